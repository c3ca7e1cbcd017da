"""``pseudogate dev-certs``: a development CA, a localhost server certificate, client certs."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pseudogate.tools.certs import parse_org_role, write_dev_certs


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "dev-certs",
        help="make development mTLS certificates (CA, server, one client per organisation)",
        description=(
            "Create ca.pem/ca.key, server.pem/server.key (localhost, 127.0.0.1) and "
            "<org>.pem/<org>.key per --org, ECDSA P-256, valid 30 days. Run again with new "
            "--org values to add organisations under the same CA."
        ),
    )
    p.add_argument("--out", type=Path, required=True, help="output directory (created if missing)")
    p.add_argument(
        "--org",
        action="append",
        default=[],
        metavar="NAME:ROLE",
        help="organisation and role, e.g. gp-denbigh:provider (repeatable; roles: provider, "
        "researcher, auditor, admin)",
    )
    p.add_argument("--force", action="store_true", help="replace existing files with a new CA")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    orgs = [parse_org_role(spec) for spec in args.org]
    result = write_dev_certs(args.out, orgs, force=args.force)
    if result.reused_ca:
        print(f"using the existing CA in {args.out}")
    for path in sorted(result.written):
        print(f"wrote {path}")
    out = args.out
    print(
        f"\nserve:   pseudogate serve --ca {out / 'ca.pem'} --cert {out / 'server.pem'} "
        f"--key {out / 'server.key'} ..."
    )
    for org, _role in orgs:
        print(
            f"client:  --ca {out / 'ca.pem'} --cert {out / f'{org}.pem'} --key {out / f'{org}.key'}"
        )
    return 0
