"""An exact project's join on the workers: a hash join by person that keeps the local row order.

The workers run the gateway's own join (``gateway.extract.join_versions``, received as
``ExtractJoin.join``) on buckets of people: a SQL LEFT JOIN only ever pairs rows with the same
link token, so each bucket of tokens (a hash of the token) is joined apart from the others.
Four passes, each a map over small tasks (``rows_per_range`` rows of a dataset each):

1. **split the first dataset**: each task reads one range of its rows, numbers them, and writes
   them by bucket; its rows without a token (no NHS number) link nobody, so it joins them at
   once (with nothing);
2. **split each further dataset**: each task reads one range of its rows (every cell checked
   to be UTF-8, as the gateway's full read checks it), drops the rows without a token, which
   match nothing, and writes the others by bucket, in file order;
3. **join each bucket**: the bucket's rows of the first dataset (in row order) with those of
   each further one (in file order), opted-out people removed, written by range of the first
   dataset; each task returns the distinct opted-out tokens it removed (a person is in one
   bucket, so no one is counted twice);
4. **assemble each range**: its rows from every bucket, sorted (stably) by row number, are
   exactly that range's rows of the extract the gateway would build (a row's matches are all
   in one bucket, in order). The linkage tokens become project tokens with the project's
   derived key, and the range is written as a partition for the anonymisation passes.

A task holds one range or one bucket (about ``rows_per_range`` rows of all the datasets
together), never a whole dataset, so a worker's memory does not grow with the datasets, only
with one person's matches (always in one bucket); every row is read and written a fixed number
of times.
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from numpy.typing import NDArray

from pseudogate.batch.inputs import Inputs, Part
from pseudogate.batch.outputs import open_private, part_name
from pseudogate.batch.runner import Runner
from pseudogate.core.columns import as_text, rekey_tokens
from pseudogate.core.tokens import ShippedKey, Tokeniser

__all__ = ["MAX_BUCKETS", "JoinPlan", "JoinedParts", "RowRange", "Source", "VersionJoin",
           "joined_parts", "rekeyed", "row_ranges", "write_part"]

#: At most this many buckets of people, whatever the datasets' size.
MAX_BUCKETS = 1024
#: The column numbering the first dataset's rows while they travel through the buckets.
ROW_NUMBER = "__row"
#: The opt-out tokens' column in the file the workers read them from.
_OPTOUT_COLUMN = "token"


class VersionJoin(Protocol):
    """The gateway's join bound to a project's layout (``ExtractJoin.join``)."""

    def __call__(self, left: pa.Table, rights: Iterable[pa.Table], *,
                 optout_tokens: pa.Array | None,
                 carry: str | None = None) -> tuple[pa.Table, pa.Array]: ...


class Source(Protocol):
    """A version file the workers read, and its columns to read, the link column first
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
    """Rows ``start`` (included) to ``stop`` (excluded) of a version file, in file order."""

    start: int
    stop: int


@dataclass(frozen=True, slots=True)
class JoinedParts:
    """The extract's partitions (re-keyed, in order) and the people removed as opted out."""

    inputs: Inputs
    optouts_removed: int


@dataclass(frozen=True, slots=True)
class _FirstSplit:
    """What splitting one range of the first dataset wrote: a file per bucket, and the range's
    rows without a token, already joined (None: it had none)."""

    buckets: dict[int, str]
    unlinked: str | None


@dataclass(frozen=True, slots=True)
class _BucketJob:
    """A bucket's files: of the first dataset (by range), of each further one (by range), and
    of its opt-out tokens (None: no one in the bucket opted out)."""

    bucket: int
    first: tuple[str, ...]
    further: tuple[tuple[str, ...], ...]
    optouts: str | None


@dataclass(frozen=True, slots=True)
class _JoinedBucket:
    """A joined bucket's files by range of the first dataset, and its removed tokens."""

    ranges: dict[int, str]
    removed: pa.Array


def row_ranges(path: str, rows_per_range: int) -> list[RowRange]:
    """A version file's rows in consecutive ranges (at least one, even if empty); only the
    file's footer is read."""
    total = pq.ParquetFile(path).metadata.num_rows
    return [RowRange(start, min(start + rows_per_range, total))
            for start in range(0, max(total, 1), rows_per_range)]


def _bucket_count(sources: Sequence[Source], rows_per_bucket: int) -> int:
    total = sum(int(pq.ParquetFile(s.path).metadata.num_rows) for s in sources)
    return min(MAX_BUCKETS, max(1, -(-total // rows_per_bucket)))


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


def _buckets_of(link: pa.Array, buckets: int) -> NDArray[np.int64]:
    """Each token's bucket: CRC-32 of the token, the same in every process (unlike hash())."""
    encoded = pc.dictionary_encode(as_text(link))
    distinct = encoded.dictionary.to_pylist()
    per_token = np.fromiter((zlib.crc32(t.encode()) % buckets for t in distinct),
                            dtype=np.int64, count=len(distinct))
    codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    return np.asarray(per_token[codes], dtype=np.int64)


def _write_groups(table: pa.Table, keys: NDArray[np.int64], folder: Path,
                  name: str) -> dict[int, str]:
    """``table``'s rows grouped by ``keys`` (order kept within a group), one file per key."""
    if not table.num_rows:
        return {}
    order = np.argsort(keys, kind="stable")
    table = table.take(pa.array(order, type=pa.int64()))
    present, starts = np.unique(keys[order], return_index=True)
    ends = [*starts[1:].tolist(), table.num_rows]
    written: dict[int, str] = {}
    for key, start, end in zip(present.tolist(), starts.tolist(), ends, strict=True):
        path = folder / name.format(key=key)
        write_part(table.slice(start, end - start), path)
        written[key] = str(path)
    return written


def _empty_text(columns: Sequence[str]) -> pa.Table:
    return pa.schema([(c, pa.string()) for c in columns]).empty_table()


def _read_all(paths: Sequence[str], columns: Sequence[str]) -> pa.Table:
    """Files of one shape, concatenated in the order given."""
    if not paths:
        return _empty_text(columns)
    return pa.concat_tables([pq.read_table(p) for p in paths])


def _split_first(job: tuple[int, RowRange], *, sources: Sequence[Source], join: VersionJoin,
                 buckets: int, work: str) -> _FirstSplit:
    """On a worker (pass 1): one range of the first dataset, numbered, written by bucket."""
    index, rows = job
    source = sources[0]
    left = _read_range(source, rows)
    numbers = pa.array(np.arange(rows.start, rows.start + left.num_rows), type=pa.int64())
    left = left.append_column(ROW_NUMBER, numbers)
    linked = pc.not_equal(as_text(left.column(source.link_column)), "")
    unlinked: str | None = None
    if not pc.all(linked).as_py():
        nobody = [_empty_text(s.columns) for s in sources[1:]]
        alone, _ = join(left.filter(pc.invert(linked)), nobody, optout_tokens=None,
                        carry=ROW_NUMBER)
        unlinked = str(Path(work) / "joined" / f"unlinked-r{index:05d}.parquet")
        write_part(alone, Path(unlinked))
    left = left.filter(linked)
    link = as_text(left.column(source.link_column))
    written = _write_groups(left, _buckets_of(link, buckets), Path(work) / "first",
                            f"b{{key:05d}}-r{index:05d}.parquet")
    return _FirstSplit(buckets=written, unlinked=unlinked)


def _split_further(job: tuple[int, int, RowRange], *, sources: Sequence[Source], buckets: int,
                   work: str) -> dict[int, str]:
    """On a worker (pass 2): one range of a further dataset, as text, written by bucket."""
    which, index, rows = job
    source = sources[which]
    table = _read_range(source, rows)
    names = list(source.columns)
    text = pa.Table.from_arrays([as_text(table.column(n)) for n in names], names=names)
    text = text.filter(pc.not_equal(text.column(source.link_column), ""))  # links nobody
    return _write_groups(text, _buckets_of(text.column(source.link_column), buckets),
                         Path(work) / f"further-{which}", f"b{{key:05d}}-r{index:05d}.parquet")


def _read_optouts(path: str | None) -> pa.Array | None:
    """A bucket's opt-out tokens, or None when there are none."""
    if path is None:
        return None
    return pq.read_table(path).column(_OPTOUT_COLUMN).combine_chunks()


def _join_bucket(job: _BucketJob, *, sources: Sequence[Source], join: VersionJoin,
                 rows_per_range: int, work: str) -> _JoinedBucket:
    """On a worker (pass 3): a bucket's people joined, opted-out ones removed, written by
    range of the first dataset."""
    left = _read_all(job.first, sources[0].columns)
    rights: Iterator[pa.Table] = (_read_all(paths, s.columns)
                                  for paths, s in zip(job.further, sources[1:], strict=True))
    joined, removed = join(left, rights, optout_tokens=_read_optouts(job.optouts),
                           carry=ROW_NUMBER)
    del left
    ranges = joined.column(ROW_NUMBER).to_numpy() // rows_per_range
    written = _write_groups(joined, ranges.astype(np.int64), Path(work) / "joined",
                            f"r{{key:05d}}-b{job.bucket:05d}.parquet")
    return _JoinedBucket(ranges=written, removed=removed)


def _assemble_range(job: tuple[int, tuple[str, ...]], *, header: tuple[str, ...],
                    rekey: tuple[str, ...], key: ShippedKey, out_dir: str) -> Part:
    """On a worker (pass 4): a range's joined rows in row order, re-keyed, as a partition."""
    index, paths = job
    if paths:
        table = pa.concat_tables([pq.read_table(p) for p in paths])
        order = pc.sort_indices(table, sort_keys=[(ROW_NUMBER, "ascending")])  # stable
        table = table.take(order).drop_columns([ROW_NUMBER])
    else:
        table = _empty_text(header)
    keyed = rekeyed(table.select(list(header)), rekey, key.tokeniser())
    schema = pa.schema([(name, pa.string()) for name in header])
    return write_part(keyed.cast(schema), Path(out_dir) / part_name(index, csv_out=False))


def _write_optouts(tokens: pa.Array | None, buckets: int, folder: Path) -> dict[int, str]:
    """The opt-out tokens by bucket, as private files the workers read (a bucket's task reads
    its own, rather than every task receiving them all)."""
    if tokens is None or not len(tokens):
        return {}
    text = as_text(tokens)
    return _write_groups(pa.table({_OPTOUT_COLUMN: text}), _buckets_of(text, buckets), folder,
                         "b{key:05d}.parquet")


def joined_parts(plan: JoinPlan, *, runner: Runner, folder: Path, rows_per_range: int,
                 key: ShippedKey) -> JoinedParts:
    """The extract of ``plan``, joined, opt-outs removed and re-keyed on the workers, as
    partitions in ``folder`` (private; the workers must see it), one per range of the first
    dataset; only file footers are read here."""
    for name in ("first", "joined", "parts", "optouts",
                 *(f"further-{which}" for which in range(1, len(plan.sources)))):
        (folder / name).mkdir(mode=0o700)
    sources = tuple(plan.sources)
    buckets = _bucket_count(sources, rows_per_range)
    common = {"sources": sources, "buckets": buckets, "work": str(folder)}
    ranges = row_ranges(sources[0].path, rows_per_range)
    optouts = _write_optouts(plan.optout_tokens, buckets, folder / "optouts")
    firsts = runner.map(_split_first, list(enumerate(ranges)), join=plan.join, **common)
    further_jobs = [(which, index, rows) for which in range(1, len(sources))
                    for index, rows in enumerate(row_ranges(sources[which].path, rows_per_range))]
    furthers = runner.map(_split_further, further_jobs, **common)
    # each bucket's files, in range order (the order of the rows in each dataset)
    first_files: dict[int, list[str]] = defaultdict(list)
    for split in firsts:
        for bucket, path in split.buckets.items():
            first_files[bucket].append(path)
    further_files: list[dict[int, list[str]]] = [defaultdict(list) for _ in sources[1:]]
    for (which, _, _), written in zip(further_jobs, furthers, strict=True):
        for bucket, path in written.items():
            further_files[which - 1][bucket].append(path)
    jobs = [_BucketJob(bucket, tuple(paths), tuple(tuple(f.get(bucket, ())) for f in further_files),
                       optouts.get(bucket))
            for bucket, paths in sorted(first_files.items())]  # no first rows: nothing to join
    joined = runner.map(_join_bucket, jobs, sources=sources, join=plan.join,
                        rows_per_range=rows_per_range, work=str(folder))
    pieces = [(*([f.unlinked] if f.unlinked else []),
               *(j.ranges[index] for j in joined if index in j.ranges))
              for index, f in enumerate(firsts)]
    parts = runner.map(_assemble_range, list(enumerate(pieces)), header=plan.header,
                       rekey=plan.rekey, key=key, out_dir=str(folder / "parts"))
    removed = [j.removed for j in joined]
    people = pc.count_distinct(pa.concat_arrays(removed)).as_py() if removed else 0
    schema = pa.schema([(c, pa.string()) for c in plan.header])
    return JoinedParts(Inputs(tuple(parts), plan.header, schema), optouts_removed=int(people))


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
