"""``pseudogate optout import``: send a complete opt-out list; the gateway keeps only tokens."""

from __future__ import annotations

import argparse
import csv
from pathlib import Path
from typing import Any

from pseudogate.cli._client import add_client_arguments, open_channel, rpc_errors
from pseudogate.cli._common import fail
from pseudogate.v1 import admin_pb2, admin_pb2_grpc


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("optout", help="manage research opt-outs")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    imp = actions.add_parser("import", help="import a complete opt-out snapshot (NHS numbers)")
    add_client_arguments(imp)
    imp.add_argument("--input", required=True, type=Path, help="CSV file with a header row")
    imp.add_argument("--column", default="nhs_number", help="column holding NHS numbers")
    imp.add_argument("--domain", default="person", help="linkage domain (default person)")
    imp.add_argument("--delimiter", default=",", help="CSV delimiter (default ',')")
    imp.set_defaults(handler=run_import)


def read_column(path: Path, column: str, delimiter: str) -> list[str]:
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f, delimiter=delimiter)
            header = next(reader, None)
            if not header:
                fail(f"{path} is empty: a header row is needed")
            if column not in header:
                fail(f"{path} has no column {column!r}")
            index = header.index(column)
            values: list[str] = []
            for line, row in enumerate(reader, start=2):
                if len(row) != len(header):
                    fail(f"{path} line {line}: {len(row)} fields, header has {len(header)}")
                values.append(row[index])
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror}")
    except UnicodeDecodeError:
        fail(f"{path} is not UTF-8 text")
    return values


def run_import(args: argparse.Namespace) -> int:
    numbers = read_column(args.input, args.column, args.delimiter)
    with open_channel(args) as channel, rpc_errors("opt-out import"):
        reply = admin_pb2_grpc.AdminServiceStub(channel).ImportOptOuts(
            admin_pb2.ImportOptOutsRequest(nhs_numbers=numbers, domain=args.domain)
        )
    print(f"opt-out snapshot {reply.snapshot}: {reply.count} people (stored as tokens only)")
    return 0
