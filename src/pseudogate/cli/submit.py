"""``pseudogate submit``: stream a CSV file to the gateway as Arrow IPC messages."""

from __future__ import annotations

import argparse
import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from pseudogate.cli._client import add_client_arguments, open_channel, rpc_errors
from pseudogate.cli._common import Progress, fail
from pseudogate.core import csv_io
from pseudogate.core.arrow_ipc import ipc_stream_bytes
from pseudogate.gateway import MAX_MESSAGE_BYTES
from pseudogate.v1 import dataset_pb2, dataset_pb2_grpc

_BLOCK_BYTES = 8 * 1024 * 1024


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("submit", help="submit a dataset (CSV) to the gateway")
    add_client_arguments(p)
    p.add_argument("--dataset", required=True, help="dataset name, [a-z][a-z0-9_]{0,62}")
    p.add_argument("--policy", required=True, help="name of an ingestion policy registered at the gateway")
    p.add_argument("--input", required=True, type=Path, help="CSV file with a header row")
    p.add_argument("--delimiter", default=",", help="CSV delimiter (default ',')")
    p.add_argument("--organisation", default="", help="organisation (only without mTLS)")
    p.set_defaults(handler=run)


def read_header(path: Path, delimiter: str) -> list[str]:
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            header = next(csv.reader(f, delimiter=delimiter), None)
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror}")
    except UnicodeDecodeError:
        fail(f"{path} is not UTF-8 text")
    if not header:
        fail(f"{path} is empty: a header row is needed")
    return header


def ipc_messages(path: Path, *, delimiter: str = ",") -> Iterator[tuple[bytes, int]]:
    """Each item: one complete Arrow IPC stream (utf8 columns, <= 32 MiB) and its row count."""
    header = read_header(path, delimiter)
    for batch in csv_io.text_batches(path, columns=header, delimiter=delimiter,
                                     block_bytes=_BLOCK_BYTES, skip_blank_lines=True,
                                     allow_carriage_returns=True):  # as before: see csv_io
        yield from _split(batch)


def _split(batch: pa.RecordBatch) -> Iterator[tuple[bytes, int]]:
    payload = ipc_stream_bytes(batch)
    if len(payload) <= MAX_MESSAGE_BYTES or batch.num_rows <= 1:
        yield payload, batch.num_rows
        return
    half = batch.num_rows // 2
    yield from _split(batch.slice(0, half))
    yield from _split(batch.slice(half))


def run(args: argparse.Namespace) -> int:
    if not args.input.is_file():
        fail(f"input file {args.input} does not exist")
    read_header(args.input, args.delimiter)  # fail early, before connecting
    progress = Progress(f"submitting {args.dataset}")
    local_error: list[str] = []

    def requests() -> Iterator[dataset_pb2.SubmitDatasetRequest]:
        yield dataset_pb2.SubmitDatasetRequest(
            header=dataset_pb2.SubmissionHeader(
                dataset=args.dataset, policy=args.policy, organisation=args.organisation
            )
        )
        try:
            for payload, rows in ipc_messages(args.input, delimiter=args.delimiter):
                yield dataset_pb2.SubmitDatasetRequest(arrow_ipc=payload)
                progress.advance(rows)
        except (csv_io.NotPlain, OSError) as exc:
            # Raising here cancels the call, so the gateway stores nothing.
            local_error.append(str(exc) if isinstance(exc, csv_io.NotPlain) else type(exc).__name__)
            raise

    with open_channel(args) as channel, progress:
        stub = dataset_pb2_grpc.DatasetServiceStub(channel)
        try:
            with rpc_errors("submission"):
                reply = stub.SubmitDataset(requests())
        except Exception:
            if local_error:
                fail(f"{args.input} could not be read as CSV ({local_error[0]}); nothing was stored")
            raise
    print(
        f"submitted {args.dataset} version {reply.version}: {reply.rows} rows "
        f"(policy {reply.policy_fingerprint[:16]}…, linkage key {reply.key_id})"
    )
    return 0
