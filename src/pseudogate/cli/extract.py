"""``pseudogate extract``: receive a project's extract and its signed manifest."""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pseudogate.cli._client import add_client_arguments, open_channel, rpc_errors
from pseudogate.cli._common import Progress, fail, warn
from pseudogate.core.errors import InvalidInput
from pseudogate.core.fileio import atomic_output, atomic_write_text
from pseudogate.core.manifest import Manifest, content_sha256
from pseudogate.v1 import extract_pb2, extract_pb2_grpc


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("extract", help="download a project's extract")
    add_client_arguments(p)
    p.add_argument("--project", required=True, help="project id")
    p.add_argument("--output", required=True, type=Path, help="FILE.csv or FILE.parquet")
    p.add_argument("--manifest", required=True, type=Path, help="where to write the manifest JSON")
    p.set_defaults(handler=run)


def write_csv(table: pa.Table, path: Path) -> None:
    """Comma-separated, \\n line ends, UTF-8 without BOM, minimal quoting."""
    with atomic_output(path) as tmp, tmp.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
        writer.writerow(table.column_names)
        columns = [col.to_pylist() for col in table.columns]
        writer.writerows(zip(*columns, strict=True))


def write_parquet(table: pa.Table, path: Path) -> None:
    """The same cells as UTF-8 strings, never null."""
    with atomic_output(path) as tmp:
        pq.write_table(table, tmp)


def rows_of(table: pa.Table) -> list[list[str]]:
    columns = [col.to_pylist() for col in table.columns]
    return [list(r) for r in zip(*columns, strict=True)]


def run(args: argparse.Namespace) -> int:
    suffix = args.output.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        fail("--output must end in .csv or .parquet")
    progress = Progress(f"extract {args.project}")
    tables: list[pa.Table] = []
    manifest: Manifest | None = None
    with open_channel(args) as channel, progress, rpc_errors("extract"):
        stub = extract_pb2_grpc.ExtractServiceStub(channel)
        for message in stub.CreateExtract(extract_pb2.CreateExtractRequest(project=args.project)):
            if message.WhichOneof("payload") == "arrow_ipc":
                table = pa.ipc.open_stream(message.arrow_ipc).read_all()
                tables.append(table)
                progress.advance(table.num_rows)
            else:
                manifest = _received_manifest(message.manifest_json)
    if manifest is None:
        raise InvalidInput("the gateway's stream ended without a manifest; nothing was written")
    if not tables:
        raise InvalidInput("the gateway sent no table; nothing was written")
    table = pa.concat_tables(tables)
    if table.num_rows != manifest.rows:
        raise InvalidInput("received row count differs from the manifest; nothing was written")
    digest = content_sha256(table.column_names, rows_of(table))
    if digest != manifest.content_sha256:
        raise InvalidInput("received content does not match the manifest's hash; nothing was written")
    if suffix == ".csv":
        write_csv(table, args.output)
    else:
        write_parquet(table, args.output)
    text = json.dumps(manifest.to_json_dict(), ensure_ascii=False, indent=2)
    atomic_write_text(args.manifest, text + "\n")
    warn(f"extract of {args.project}: {table.num_rows} rows -> {args.output}; manifest -> {args.manifest}")
    return 0


def _received_manifest(text: str) -> Manifest:
    """The gateway's manifest, checked before anything is written."""
    try:
        return Manifest.from_json(text)
    except InvalidInput as exc:
        raise InvalidInput(f"the gateway's {exc}; nothing was written") from None
