"""``pseudogate keys public --server ADDR [--all]``: the gateway's Ed25519 public key as PEM.

Anyone who verifies manifests or audit checkpoints needs it; it is open to every
authenticated caller (AuditService.GetPublicKey). ``--all`` writes every signing key the
gateway holds, current first, as one PEM bundle: what ``audit verify --public-key`` needs for a
log that spans a rotation of the signing key.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pseudogate.cli._client import add_client_arguments, open_channel, rpc_errors
from pseudogate.core.fileio import atomic_write_text
from pseudogate.v1 import audit_pb2, audit_pb2_grpc

__all__ = ["register_public"]


def register_public(keys_sub: Any) -> None:
    p: argparse.ArgumentParser = keys_sub.add_parser(
        "public", help="print the gateway's public signing key (PEM SubjectPublicKeyInfo)"
    )
    add_client_arguments(p)
    p.add_argument("--output", type=Path, help="write the PEM to this file instead of stdout")
    p.add_argument(
        "--all", action="store_true",
        help="every signing key the gateway holds (current first), for logs that span a rotation",
    )
    p.set_defaults(handler=run_public)


def run_public(args: argparse.Namespace) -> int:
    with open_channel(args) as channel, rpc_errors("public key request"):
        reply = audit_pb2_grpc.AuditServiceStub(channel).GetPublicKey(
            audit_pb2.GetPublicKeyRequest()
        )
    pem = reply.public_key_pem
    if args.all and reply.signing_keys:
        pem = "".join(key.public_key_pem for key in reply.signing_keys)
    if args.output:
        atomic_write_text(args.output, pem)
    else:
        print(pem, end="")
    return 0
