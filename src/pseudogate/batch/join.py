"""An exact project's join on the workers: one task per row range of the first dataset.

Each task reads its range of the first version's rows, and streams each further version's
needed columns record batch by record batch, keeping only the rows whose link token occurs in
its range (so a worker holds its range and those matches, never a whole right dataset). It
then calls the gateway's own join (``gateway.extract.join_versions``, received as
``ExtractJoin.join``): a SQL LEFT JOIN only looks at matching rows in their order, so the
range's result is exactly that range's rows of the extract the gateway would build. The task
removes the opted-out people, re-keys the linkage tokens to project tokens with the project's
derived key, and writes its partition of the extract (Parquet, utf8) for the anonymisation
passes; it returns the distinct opted-out tokens it removed, so that people are counted once
across ranges.

The price of streaming: every task reads every further version once, so their reading grows
with the number of ranges (``rows_per_partition`` of the first dataset each), while memory
does not grow with their size.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pseudogate.batch.inputs import BATCH_ROWS, Part
from pseudogate.batch.outputs import open_private, part_name
from pseudogate.core.columns import as_text, rekey_tokens
from pseudogate.core.tokens import ShippedKey, Tokeniser

__all__ = ["OPTOUT_COLUMN", "JoinPlan", "JoinedPart", "RowRange", "Source", "VersionJoin", "join_part", "read_optouts",
           "rekeyed", "row_ranges", "write_part"]

#: The opt-out tokens' column in the file the workers read them from.
OPTOUT_COLUMN = "token"


class VersionJoin(Protocol):
    """The gateway's join bound to a project's layout (``ExtractJoin.join``)."""

    def __call__(self, left: pa.Table, rights: Iterable[pa.Table], *,
                 optout_tokens: pa.Array | None) -> tuple[pa.Table, pa.Array]: ...


class Source(Protocol):
    """A version file a task reads, and its columns to read, the link column first
    (``gateway.extract.VersionSource``)."""

    @property
    def path(self) -> str: ...

    @property
    def link_column(self) -> str: ...

    @property
    def columns(self) -> tuple[str, ...]: ...


class JoinPlan(Protocol):
    """An exact project's join as the gateway describes it (``gateway.extract.ExtractJoin``)."""

    @property
    def sources(self) -> Sequence[Source]: ...

    @property
    def optout_tokens(self) -> pa.Array | None: ...

    @property
    def join(self) -> VersionJoin: ...

    @property
    def header(self) -> tuple[str, ...]: ...

    @property
    def rekey(self) -> tuple[str, ...]: ...


@dataclass(frozen=True, slots=True)
class RowRange:
    """Rows ``start`` (included) to ``stop`` (excluded) of the first version, in file order."""

    start: int
    stop: int


@dataclass(frozen=True, slots=True)
class JoinedPart:
    """A task's partition of the extract and the opted-out tokens it removed (distinct)."""

    part: Part
    removed: pa.Array


def row_ranges(path: str, rows_per_range: int) -> list[RowRange]:
    """The first version's rows in consecutive ranges (at least one, even if empty); only the
    file's footer is read."""
    total = pq.ParquetFile(path).metadata.num_rows
    return [RowRange(start, min(start + rows_per_range, total))
            for start in range(0, max(total, 1), rows_per_range)]


def _read_range(source: Source, rows: RowRange) -> pa.Table:
    """The range's rows of ``source``, reading only the row groups that hold them."""
    parquet = pq.ParquetFile(source.path)
    groups: list[int] = []
    first_row = 0
    offset = 0
    for g in range(parquet.metadata.num_row_groups):
        n = parquet.metadata.row_group(g).num_rows
        if n and offset < rows.stop and offset + n > rows.start:
            if not groups:
                first_row = offset
            groups.append(g)
        offset += n
    if not groups:
        return parquet.schema_arrow.empty_table().select(list(source.columns))
    table = parquet.read_row_groups(groups, columns=list(source.columns), use_threads=False)
    return table.slice(rows.start - first_row, rows.stop - rows.start)


def _matching_rows(source: Source, wanted: pa.Array) -> pa.Table:
    """``source``'s rows whose link token is in ``wanted``, in file order, as text.

    Every cell read is checked as the gateway's full read checks it (UTF-8), matched or not,
    so a stored version the local path refuses is refused here too."""
    names = list(source.columns)
    kept: list[pa.Table] = []
    for batch in pq.ParquetFile(source.path).iter_batches(
        batch_size=BATCH_ROWS, columns=names, use_threads=False
    ):
        text = pa.Table.from_arrays([as_text(batch.column(n)) for n in names], names=names)
        kept.append(text.filter(pc.is_in(text.column(source.link_column), value_set=wanted)))
    if not kept:
        return pa.schema([(n, pa.string()) for n in names]).empty_table()
    return pa.concat_tables(kept)


def read_optouts(path: str | None) -> pa.Array | None:
    """The opt-out tokens the gateway wrote for the workers, or None when there are none."""
    if path is None:
        return None
    return pq.read_table(path).column(OPTOUT_COLUMN).combine_chunks()


def rekeyed(table: pa.Table, rekey: Sequence[str], tokeniser: Tokeniser) -> pa.Table:
    """``table`` with the ``rekey`` columns' linkage tokens made project tokens."""
    arrays = [rekey_tokens(table[name].combine_chunks(), tokeniser) if name in rekey
              else table[name].combine_chunks() for name in table.column_names]
    return pa.Table.from_arrays(arrays, names=table.column_names)


def write_part(table: pa.Table, path: Path) -> Part:
    """``table`` as one private Parquet file (one row group) and its partition."""
    with open(open_private(path), "wb") as sink:
        pq.write_table(table, sink, row_group_size=max(table.num_rows, 1))
    groups = pq.ParquetFile(path).metadata.num_row_groups
    return Part(path=str(path), csv=False, row_groups=tuple(range(groups)), rows=table.num_rows)


def join_part(job: tuple[int, RowRange], *, sources: Sequence[Source], join: VersionJoin,
              header: tuple[str, ...], rekey: tuple[str, ...], optouts: str | None,
              key: ShippedKey, out_dir: str) -> JoinedPart:
    """On a worker: the extract's rows of one range of the first version, opted-out people
    removed, tokens re-keyed, written as partition ``index`` of ``out_dir``."""
    index, rows = job
    left = _read_range(sources[0], rows)
    links = pc.unique(as_text(left.column(sources[0].link_column)))
    wanted = pc.filter(links, pc.not_equal(links, ""))  # "" links nobody (gateway/join.py)
    rights: Iterator[pa.Table] = (_matching_rows(s, wanted) for s in sources[1:])
    joined, removed = join(left, rights, optout_tokens=read_optouts(optouts))
    del left
    keyed = rekeyed(joined, rekey, key.tokeniser())
    schema = pa.schema([(name, pa.string()) for name in header])
    part = write_part(keyed.cast(schema), Path(out_dir) / part_name(index, csv_out=False))
    return JoinedPart(part=part, removed=removed)
