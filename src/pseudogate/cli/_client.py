"""Connecting CLI commands to a gateway: --server, mTLS files or --insecure, error messages."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from pathlib import Path

import grpc

from pseudogate.core.errors import InvalidInput, PseudogateError
from pseudogate.service.server import MAX_MESSAGE_BYTES

__all__ = ["RemoteError", "add_client_arguments", "open_channel", "rpc_errors"]


class RemoteError(PseudogateError):
    """The gateway refused or failed a call; carries its status code name."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self.status = code
        super().__init__(f"{code.name}: {details}")


def add_client_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--server", default="127.0.0.1:50051", help="gateway address HOST:PORT (default 127.0.0.1:50051)"
    )
    parser.add_argument("--ca", type=Path, help="CA certificate (PEM) to trust for the gateway")
    parser.add_argument("--cert", type=Path, help="this organisation's client certificate (PEM)")
    parser.add_argument("--key", type=Path, help="this organisation's private key (PEM)")
    parser.add_argument(
        "--insecure", action="store_true", help="plaintext to a gateway on loopback (development only)"
    )


def open_channel(args: argparse.Namespace) -> grpc.Channel:
    """A channel to ``--server`` with mTLS, or plaintext when ``--insecure`` is given."""
    parts = (args.ca, args.cert, args.key)
    options = [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ]
    if all(parts):
        try:
            creds = grpc.ssl_channel_credentials(
                root_certificates=args.ca.read_bytes(),
                private_key=args.key.read_bytes(),
                certificate_chain=args.cert.read_bytes(),
            )
        except OSError as exc:
            raise InvalidInput(f"cannot read {exc.filename}: {exc.strerror}") from None
        return grpc.secure_channel(args.server, creds, options=options)
    if any(parts):
        raise InvalidInput("mTLS needs all three of --ca, --cert and --key")
    if not args.insecure:
        raise InvalidInput(
            "no credentials: give --ca, --cert and --key, or --insecure for a development gateway"
        )
    return grpc.insecure_channel(args.server, options=options)


@contextlib.contextmanager
def rpc_errors(what: str) -> Iterator[None]:
    """Turn a gRPC failure into a one-line CLI error naming the status."""
    try:
        yield
    except grpc.RpcError as exc:
        code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
        details = exc.details() if hasattr(exc, "details") else str(exc)
        if code == grpc.StatusCode.UNAVAILABLE and "connect" in (details or "").lower():
            details = f"cannot reach the gateway ({details})"
        raise RemoteError(code, f"{what} failed: {details}") from None
