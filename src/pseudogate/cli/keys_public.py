"""``pseudogate keys public --server ADDR``: the gateway's Ed25519 public key as PEM.

Anyone who verifies manifests or audit checkpoints needs it; it is open to every
authenticated caller (AuditService.GetPublicKey).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pseudogate.cli._client import add_client_arguments, open_channel, rpc_errors
from pseudogate.fileio import atomic_write_text
from pseudogate.v1 import audit_pb2, audit_pb2_grpc

__all__ = ["register_public"]


def register_public(keys_sub: Any) -> None:
    p: argparse.ArgumentParser = keys_sub.add_parser(
        "public", help="print the gateway's public signing key (PEM SubjectPublicKeyInfo)"
    )
    add_client_arguments(p)
    p.add_argument("--output", type=Path, help="write the PEM to this file instead of stdout")
    p.set_defaults(handler=run_public)


def run_public(args: argparse.Namespace) -> int:
    with open_channel(args) as channel, rpc_errors("public key request"):
        reply = audit_pb2_grpc.AuditServiceStub(channel).GetPublicKey(
            audit_pb2.GetPublicKeyRequest()
        )
    if args.output:
        atomic_write_text(args.output, reply.public_key_pem)
    else:
        print(reply.public_key_pem, end="")
    return 0
