"""``pseudogate audit export|verify``: fetch the audit log, and verify it offline."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pseudogate.audit import AuditVerificationFailed, verify_database, verify_export
from pseudogate.cli._client import add_client_arguments, open_channel, rpc_errors
from pseudogate.cli._common import Progress, fail
from pseudogate.core.errors import VerificationFailed
from pseudogate.core.fileio import atomic_output
from pseudogate.core.manifest import load_public_keys_pem

_SQLITE_MAGIC = b"SQLite format 3\x00"


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("audit", help="export and verify the audit log")
    actions = p.add_subparsers(dest="audit_command", required=True, metavar="ACTION")

    export = actions.add_parser(
        "export", help="stream the whole log from a gateway into a JSON-lines file"
    )
    add_client_arguments(export)
    export.add_argument("--output", type=Path, required=True, help="file to write (.jsonl)")
    export.set_defaults(handler=run_export)

    verify = actions.add_parser(
        "verify", help="recompute the hash chain and check every checkpoint signature"
    )
    verify.add_argument("file", type=Path, help="an export (.jsonl) or the SQLite audit database")
    verify.add_argument(
        "--public-key", type=Path, required=True, action="append",
        help="the gateway's Ed25519 public key (PEM SubjectPublicKeyInfo). For a log that spans "
        "a rotation of the signing key, repeat it or give a file holding several keys: every "
        "checkpoint must verify under one of them",
    )
    verify.set_defaults(handler=run_verify)


def run_export(args: argparse.Namespace) -> int:
    from pseudogate.v1 import audit_pb2, audit_pb2_grpc

    channel = open_channel(args)
    events = checkpoints = 0
    try:
        with (
            rpc_errors("ListEvents"),
            atomic_output(args.output) as tmp,
            tmp.open("w", encoding="utf-8", newline="\n") as out,
            Progress("exporting audit records") as progress,
        ):
            stub = audit_pb2_grpc.AuditServiceStub(channel)
            for message in stub.ListEvents(audit_pb2.ListEventsRequest(from_seq=1)):
                line = message.record_json
                if "\n" in line or "\r" in line:
                    line = json.dumps(json.loads(line), ensure_ascii=False)
                out.write(line + "\n")
                if '"signature"' in line:
                    checkpoints += 1
                else:
                    events += 1
                progress.advance(1)
    finally:
        channel.close()
    print(f"wrote {args.output}: {events} events, {checkpoints} checkpoints")
    return 0


def _lines(path: Path) -> Iterator[str]:
    """Lines of the export; a line that is not UTF-8 becomes one that fails to parse."""
    with path.open("rb") as f:
        for raw in f:
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError:
                yield "\x00 not UTF-8"


def run_verify(args: argparse.Namespace) -> int:
    try:
        pems = [path.read_bytes() for path in args.public_key]
        with args.file.open("rb") as f:
            is_database = f.read(len(_SQLITE_MAGIC)) == _SQLITE_MAGIC
    except OSError as exc:
        fail(f"cannot read {exc.filename}: {exc.strerror}")
    public_key = [key for pem in pems for key in load_public_keys_pem(pem)]
    try:
        if is_database:
            report = verify_database(args.file, public_key)
        else:
            report = verify_export(_lines(args.file), public_key)
    except AuditVerificationFailed as exc:
        print(f"FAIL: {args.file} does not verify: first bad sequence number {exc.seq}")
        print(f"      {exc.reason}")
        return 1
    except VerificationFailed as exc:
        print(f"FAIL: {args.file} does not verify: {exc}")
        return 1
    print(
        f"OK: {args.file} verifies: {report.events} events (seq 1 to {report.last_seq}), "
        f"{report.checkpoints} checkpoint signatures valid"
    )
    print(f"    chain head {report.head_hash}, last checkpoint at {report.last_checkpoint_time}")
    if report.unsigned_events:
        print(
            f"    note: the last {report.unsigned_events} events are chained but not yet covered "
            "by a checkpoint (a live database)",
            file=sys.stderr,
        )
    return 0
