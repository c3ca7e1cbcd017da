"""``pseudogate optout import``: send a complete opt-out list; the gateway keeps only tokens.

Each import replaces the domain's snapshot, so the command prints the previous and the new
count; an empty list (a header and no rows) clears every opt-out and needs ``--allow-empty``.
"""

from __future__ import annotations

import argparse
import csv
import io
from pathlib import Path
from typing import Any

from pseudogate.cli._client import add_client_arguments, open_channel, rpc_errors
from pseudogate.cli._common import fail
from pseudogate.core.columns import INVALID_UTF8
from pseudogate.core.errors import RowError, RowErrors
from pseudogate.core.names import DEFAULT_DOMAIN
from pseudogate.v1 import admin_pb2, admin_pb2_grpc


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("optout", help="manage research opt-outs")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    imp = actions.add_parser("import", help="import a complete opt-out snapshot (NHS numbers)")
    add_client_arguments(imp)
    imp.add_argument("--input", required=True, type=Path, help="CSV file with a header row")
    imp.add_argument("--column", default="nhs_number", help="column holding NHS numbers")
    imp.add_argument(
        "--domain", default=DEFAULT_DOMAIN, help=f"linkage domain (default {DEFAULT_DOMAIN})"
    )
    imp.add_argument("--delimiter", default=",", help="CSV delimiter (default ',')")
    imp.add_argument(
        "--allow-empty",
        action="store_true",
        help="accept a file with no rows: it clears every opt-out of the domain",
    )
    imp.set_defaults(handler=run_import)


def _not_utf8(text: str) -> bool:
    """Whether a field decoded with surrogateescape held bytes that are not UTF-8."""
    return any("\udc80" <= ch <= "\udcff" for ch in text)


def read_column(path: Path, column: str, delimiter: str) -> list[str]:
    """The values of ``column``; RowErrors (data row, column) for bytes that are not UTF-8."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror}")
    text = data.removeprefix(b"\xef\xbb\xbf").decode("utf-8", errors="surrogateescape")
    try:
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
        header = next(reader, None)
        if not header:
            fail(f"{path} is empty: a header row is needed")
        if any(_not_utf8(name) for name in header):
            fail(f"{path}: the header row is not UTF-8 text")
        if column not in header:
            fail(f"{path} has no column named by --column")
        index = header.index(column)
        values: list[str] = []
        errors: list[RowError] = []
        for row_number, row in enumerate(reader, start=1):
            if len(row) != len(header):
                fail(f"{path} row {row_number} (line {reader.line_num}): {len(row)} fields, "
                     f"header has {len(header)}")
            errors.extend(
                RowError(row_number, INVALID_UTF8, header[i]) for i, v in enumerate(row) if _not_utf8(v)
            )
            values.append(row[index])
    except csv.Error:
        fail(f"{path} line {reader.line_num}: malformed CSV")
    if errors:
        raise RowErrors(errors, context=f"opt-out file {path}")
    return values


def run_import(args: argparse.Namespace) -> int:
    numbers = read_column(args.input, args.column, args.delimiter)
    if not numbers and not args.allow_empty:
        fail(
            f"{args.input} holds no rows: importing it would clear every opt-out of the linkage "
            "domain; pass --allow-empty if that is meant"
        )
    with open_channel(args) as channel, rpc_errors("opt-out import"):
        reply = admin_pb2_grpc.AdminServiceStub(channel).ImportOptOuts(
            admin_pb2.ImportOptOutsRequest(
                nhs_numbers=numbers, domain=args.domain, allow_empty=args.allow_empty
            )
        )
    previous = (
        f"snapshot {reply.previous_snapshot}: {reply.previous_count} people"
        if reply.previous_snapshot
        else "none"
    )
    print(f"previous opt-outs: {previous}")
    print(f"new opt-outs: snapshot {reply.snapshot}: {reply.count} people (stored as tokens only)")
    return 0
