"""The partitions of a batch input: a CSV file, a Parquet file, or a folder or glob of Parquet.

Partitions are numbered in a fixed order (files sorted by path, then row groups in file
order), so data rows are numbered from 1 across all of them exactly as if the files were one
table. Only file footers are read here (the client never reads the table itself); the paths
must be readable by the workers at the same names (a shared file system).
"""

from __future__ import annotations

import csv
import glob
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pseudogate.core import csv_io
from pseudogate.core.errors import InvalidInput

__all__ = ["BATCH_BYTES", "BATCH_ROWS", "MAX_BATCH_ROWS", "NOT_PLAIN", "PARTITION_ROWS", "Inputs", "Part", "find_inputs",
           "read_batches"]

#: Row groups of one Parquet file are gathered into partitions of about this many rows.
PARTITION_ROWS = 1 << 20
#: Rows per record batch read from Parquet (memory per worker is a few batches).
BATCH_ROWS = 1 << 17
#: With ``whole=True``, a batch holds up to this many bytes of the row groups (as encoded,
#: uncompressed: the footer's figure) and at most ``MAX_BATCH_ROWS`` rows: a partition of a
#: narrow table comes as one batch.
BATCH_BYTES = 64 << 20
MAX_BATCH_ROWS = 1 << 20
#: A CSV partition Arrow cannot vouch for (wrong field counts, a carriage return in a value,
#: a blank line, bad UTF-8): only the local engine reads it, row by row.
NOT_PLAIN = "not_plain"


@dataclass(frozen=True, slots=True)
class Part:
    """One partition: a whole CSV file, or some row groups of one Parquet file."""

    path: str
    csv: bool
    row_groups: tuple[int, ...] = ()
    rows: int | None = None  # known from the Parquet footer; None for CSV


@dataclass(frozen=True, slots=True)
class Inputs:
    """The partitions in order and the table's column names."""

    parts: tuple[Part, ...]
    columns: tuple[str, ...]
    schema: pa.Schema | None  # Parquet only


def _parquet_files(spec: str) -> list[Path]:
    path = Path(spec)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.parquet") if p.is_file())
        if not files:
            raise InvalidInput(f"input folder {spec} holds no .parquet files")
        return files
    if any(ch in spec for ch in "*?["):
        files = sorted(Path(p) for p in glob.glob(spec, recursive=True) if Path(p).is_file())
        if not files:
            raise InvalidInput(f"input pattern {spec!r} matches no file")
        bad = [p for p in files if p.suffix != ".parquet"]
        if bad:
            raise InvalidInput(f"input pattern {spec!r} matches {len(bad)} file(s) that are not "
                               ".parquet (a pattern may name Parquet partitions only)")
        return files
    if not path.is_file():
        raise InvalidInput(f"input file {spec} does not exist")
    return [path]


def _header(path: Path, *, delimiter: str) -> tuple[str, ...]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            header = next(csv.reader(f, delimiter=delimiter), None)
    except UnicodeDecodeError:
        raise InvalidInput(f"input file {path} is not UTF-8 text") from None
    except csv.Error:
        raise InvalidInput(f"input file {path}: malformed header row") from None
    if not header:
        raise InvalidInput(f"input file {path} is empty: a header row is expected")
    return tuple(header)


def find_inputs(spec: str | Path, *, delimiter: str = ",",
                partition_rows: int = PARTITION_ROWS) -> Inputs:
    """The partitions of ``spec``: a ``.csv`` file is one partition; Parquet files are split
    into partitions of whole row groups of about ``partition_rows`` rows."""
    spec = str(spec)
    if spec.endswith(".csv") and not any(ch in spec for ch in "*?["):
        path = Path(spec)
        if not path.is_file():
            raise InvalidInput(f"input file {spec} does not exist")
        return Inputs((Part(str(path), csv=True),), _header(path, delimiter=delimiter), None)
    parts: list[Part] = []
    schema: pa.Schema | None = None
    for path in _parquet_files(spec):
        try:
            meta = pq.ParquetFile(path)
        except (pa.ArrowInvalid, OSError):
            raise InvalidInput(f"input file {path} is not a Parquet file") from None
        file_schema = meta.schema_arrow
        if schema is None:
            schema = file_schema
        elif file_schema.names != schema.names:
            raise InvalidInput(f"input file {path} has other columns than {parts[0].path}")
        group: list[int] = []
        rows = 0
        for i in range(meta.metadata.num_row_groups):
            group.append(i)
            rows += meta.metadata.row_group(i).num_rows
            if rows >= partition_rows:
                parts.append(Part(str(path), csv=False, row_groups=tuple(group), rows=rows))
                group, rows = [], 0
        if group or meta.metadata.num_row_groups == 0:
            parts.append(Part(str(path), csv=False, row_groups=tuple(group), rows=rows))
    assert schema is not None
    return Inputs(tuple(parts), tuple(schema.names), schema)


def read_batches(part: Part, *, columns: tuple[str, ...], delimiter: str = ",",
                 batch_rows: int = BATCH_ROWS, whole: bool = False) -> Iterator[pa.RecordBatch]:
    """The record batches of one partition (CSV cells as text; raises ``csv_io.NotPlain``).

    ``whole``: Parquet batches as large as ``BATCH_BYTES`` allows (the whole partition of a
    narrow table), for work that pays per batch (tokenising finds repeats within a batch).
    """
    if part.csv:
        for batch in csv_io.text_batches(Path(part.path), columns=columns, delimiter=delimiter):
            if csv_io.has_blank_row(batch):
                raise csv_io.NotPlain("a row of empty fields")
            yield batch
        return
    if not part.row_groups:
        return
    file = pq.ParquetFile(part.path)
    if whole and part.rows:
        size = sum(file.metadata.row_group(i).total_byte_size for i in part.row_groups)
        fit = part.rows * BATCH_BYTES // max(size, 1)
        batch_rows = max(batch_rows, min(fit, part.rows, MAX_BATCH_ROWS))
    yield from file.iter_batches(
        batch_size=batch_rows, row_groups=list(part.row_groups), use_threads=False
    )
