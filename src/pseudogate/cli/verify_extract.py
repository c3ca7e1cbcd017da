"""``pseudogate verify-extract``: check an extract offline against its manifest (and policy)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pseudogate.cli._common import fail
from pseudogate.core.manifest import load_public_key_pem
from pseudogate.tools.verify_extract import load_manifest, verify_extract


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "verify-extract",
        help="verify an extract's signature, content hash, k and l, and scan for identifiers",
        description=(
            "Checks the manifest signature, the content hash, the row count and scans every "
            "column for direct identifiers; with --policy also the policy fingerprint and the "
            "recomputed k and l. Prints each check and exits 1 if any fails."
        ),
    )
    p.add_argument("file", type=Path, help="the extract (.csv or .parquet)")
    p.add_argument("--manifest", type=Path, required=True, help="the extract's manifest (JSON)")
    p.add_argument(
        "--public-key", type=Path, required=True,
        help="the gateway's Ed25519 public key (PEM SubjectPublicKeyInfo)",
    )
    p.add_argument("--policy", type=Path, help="the project's extract policy (YAML)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    try:
        pem = args.public_key.read_bytes()
    except OSError as exc:
        fail(f"cannot read public key {args.public_key}: {exc.strerror}")
    public_key = load_public_key_pem(pem)
    manifest = load_manifest(args.manifest)
    policy = None
    if args.policy is not None:
        from pseudogate.core.policy import load_policy

        policy = load_policy(args.policy)
    result = verify_extract(args.file, manifest, public_key, policy=policy)
    print(f"verify-extract: {args.file} against {args.manifest}")
    print(result.render())
    return 0 if result.ok else 1
