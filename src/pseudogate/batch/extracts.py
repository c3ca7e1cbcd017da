"""An extract's join, re-keying and k-anonymity step on a Dask cluster (``serve --dask-scheduler``).

:class:`ClusterAnonymiser` is what the gateway's ``anonymiser=`` seam receives. For an exact
project the gateway reads no data: it hands :meth:`ClusterAnonymiser.join_and_anonymise` an
``ExtractJoin`` (the version files, the columns each needs, the opt-out tokens and the
gateway's join function). In a private working folder, and on the workers:

1. the versions are read, joined by a hash join by person that keeps the local row order,
   cleared of opted-out people, and their linkage tokens made project tokens with the one
   derived project key the workers receive (``Keyring.project_key_to_ship``; never the
   keyring): batch/join.py. The result is one partition per range of the first dataset's
   rows (``rows_per_partition`` each);
2. :func:`pseudogate.batch.anonymise.anonymise_parts` runs on those partitions as for
   ``anonymise --engine dask``: the workers count the frequency table, the client runs the
   unchanged exact search, the workers write the kept rows.

A probabilistic project's table is joined by the gateway (its representative tokens are
computed there) and handed to :meth:`ClusterAnonymiser.rekey_and_anonymise`: it is written as
Parquet partitions, re-keyed on the workers, then step 2 runs.

The released partitions are read back in order, so the released table, and with it the
manifest and its content hash, are those of the local path. The workers must see the data
directory and the working folder at the same paths (the same machine, or a filesystem shared
with the gateway). Dask is imported only when an extract is built, never by importing this
module.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pseudogate.anonymity.report import AnonymisationReport
from pseudogate.batch.anonymise import anonymise_parts
from pseudogate.batch.inputs import Inputs, Part, read_batches
from pseudogate.batch.join import JoinPlan, joined_parts, rekeyed, write_part
from pseudogate.batch.outputs import part_name
from pseudogate.batch.runner import Runner, check_scheduler_address, dask_runner
from pseudogate.core.errors import InvalidInput, Unavailable
from pseudogate.core.keyring import Keyring
from pseudogate.core.policy import Policy
from pseudogate.core.tokens import ShippedKey

__all__ = ["CLUSTER_WORK_DIR", "ROWS_PER_PARTITION", "ClusterAnonymised", "ClusterAnonymiser",
           "ClusterExtract"]

#: The working folder's name in a gateway's data directory.
CLUSTER_WORK_DIR = "cluster-work"
#: Rows per partition sent to the workers: of the first dataset for a join on the workers
#: (its one-to-many matches can make a partition larger), of the extract otherwise.
ROWS_PER_PARTITION = 1_000_000


@dataclass(frozen=True)
class ClusterAnonymised:
    """The released table (text cells, rows in the input's order) and its report."""

    table: pd.DataFrame
    report: AnonymisationReport


@dataclass(frozen=True)
class ClusterExtract:
    """An extract joined on the workers: the released table, its report, and the distinct
    people its join removed as opted out (for the manifest)."""

    table: pd.DataFrame
    report: AnonymisationReport
    optouts_removed: int


#: Writes a job's partitions into a folder with the connected runner; returns them.
_Prepare = Callable[[Runner, Path], Inputs]


class ClusterAnonymiser:
    """Builds extracts on the Dask scheduler at ``scheduler`` (checked now: ``tls://``, or
    ``tcp://`` on this machine only). ``work_dir``: where the partitions are written (None:
    the system's temporary folder); ``rows_per_partition``: rows of a dataset per task of the
    join (and about the rows of all datasets per bucket of people), or of a joined table per
    partition; ``runner``: an already connected runner (tests)."""

    def __init__(self, scheduler: str | None = None, *, work_dir: Path | None = None,
                 rows_per_partition: int = ROWS_PER_PARTITION,
                 runner: Runner | None = None) -> None:
        if scheduler is None and runner is None:
            raise ValueError("a scheduler address or a runner is needed")
        if scheduler is not None:
            check_scheduler_address(scheduler)
        if rows_per_partition < 1:
            raise ValueError("rows_per_partition must be at least 1")
        self.scheduler = scheduler
        self.work_dir = work_dir
        self.rows_per_partition = rows_per_partition
        self._runner = runner

    def clear(self) -> None:
        """Remove what an interrupted extract left in the working folder."""
        if self.work_dir is not None and self.work_dir.exists():
            for entry in self.work_dir.iterdir():
                shutil.rmtree(entry, ignore_errors=True)

    def __call__(self, table: pd.DataFrame, policy: Policy, *, keyring: Keyring | None = None,
                 person_column: str | None = None) -> ClusterAnonymised:
        """The call of ``pseudogate.anonymity.anonymise`` (a table already re-keyed)."""
        arrays = [pa.array(table[c].to_numpy(dtype=object), type=pa.string())
                  for c in table.columns]
        text = pa.Table.from_arrays(arrays, names=[str(c) for c in table.columns])
        return self._run(text, policy, keyring=keyring, person_column=person_column)

    def rekey_and_anonymise(self, table: pa.Table, policy: Policy, *, rekey: tuple[str, ...],
                            project_key: ShippedKey, person_column: str) -> ClusterAnonymised:
        """The extract of the joined ``table`` (linkage tokens): the workers replace the
        tokens of the ``rekey`` columns by project tokens (with ``project_key``, the one key
        they receive), then anonymise."""

        def prepare(runner: Runner, folder: Path) -> Inputs:
            inputs = self._write_parts(table, folder / "in")
            (folder / "keyed").mkdir(mode=0o700)
            parts = runner.map(_rekey_part, list(enumerate(inputs.parts)),
                               columns=inputs.columns, rekey=rekey, key=project_key,
                               out_dir=str(folder / "keyed"))
            return Inputs(parts=tuple(parts), columns=inputs.columns, schema=inputs.schema)

        released, report = self._anonymised(prepare, policy, keyring=None,
                                            person_column=person_column)
        return ClusterAnonymised(released, report)

    def join_and_anonymise(self, join: JoinPlan, policy: Policy, *, project_key: ShippedKey,
                           person_column: str) -> ClusterExtract:
        """The extract of an exact project's ``join``: the workers read the versions, join
        them, remove the opted-out people and re-key the tokens (with ``project_key``, the one
        key they receive), then anonymise."""
        removed: list[int] = []

        def prepare(runner: Runner, folder: Path) -> Inputs:
            joined = joined_parts(join, runner=runner, folder=folder,
                                  rows_per_range=self.rows_per_partition, key=project_key)
            removed.append(joined.optouts_removed)
            return joined.inputs

        released, report = self._anonymised(prepare, policy, keyring=None,
                                            person_column=person_column)
        return ClusterExtract(released, report, optouts_removed=removed[0])

    def _run(self, table: pa.Table, policy: Policy, *, keyring: Keyring | None,
             person_column: str | None) -> ClusterAnonymised:
        released, report = self._anonymised(
            lambda _runner, folder: self._write_parts(table, folder / "in"), policy,
            keyring=keyring, person_column=person_column)
        return ClusterAnonymised(released, report)

    def _anonymised(self, prepare: _Prepare, policy: Policy, *, keyring: Keyring | None,
                    person_column: str | None) -> tuple[pd.DataFrame, AnonymisationReport]:
        """``prepare``'s partitions anonymised on the cluster, in a private working folder that
        is always removed; the released rows in order, and the report."""
        if policy.privacy is None:
            raise InvalidInput(f"policy {policy.name!r} has no privacy section: nothing to "
                               "anonymise against")
        if self.work_dir is not None:
            self.work_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        folder = Path(tempfile.mkdtemp(prefix="extract-", dir=self.work_dir))  # mode 0700
        try:
            with self._connected() as runner:
                inputs = prepare(runner, folder)
                result = anonymise_parts(inputs, folder / "out", policy, runner=runner,
                                         keyring=keyring, person_column=person_column)
            released = _read_parts(folder / "out", len(inputs.parts))
            return released.to_pandas(), result.report
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    @contextlib.contextmanager
    def _connected(self) -> Iterator[Runner]:
        if self._runner is not None:
            yield self._runner
            return
        with contextlib.ExitStack() as stack:
            try:
                runner = stack.enter_context(dask_runner(scheduler=self.scheduler))
            except OSError:  # Dask's "timed out trying to connect", a refused connection
                raise Unavailable(
                    f"the Dask scheduler {self.scheduler} could not be reached; the extract "
                    "was not built (serve --dask-scheduler, docs/operations.md)"
                ) from None
            yield runner

    def _write_parts(self, table: pa.Table, folder: Path) -> Inputs:
        folder.mkdir(mode=0o700)
        columns = tuple(table.column_names)
        schema = pa.schema([(c, pa.string()) for c in columns])
        table = table.cast(schema)
        parts: list[Part] = []
        for i, start in enumerate(range(0, max(table.num_rows, 1), self.rows_per_partition)):
            piece = table.slice(start, self.rows_per_partition)
            parts.append(write_part(piece, folder / part_name(i, csv_out=False)))
        return Inputs(parts=tuple(parts), columns=columns, schema=schema)


def _rekey_part(job: tuple[int, Part], *, columns: tuple[str, ...], rekey: tuple[str, ...],
                key: ShippedKey, out_dir: str) -> Part:
    """On a worker: the partition with the ``rekey`` columns' tokens made project tokens."""
    index, part = job
    table = pa.Table.from_batches(list(read_batches(part, columns=columns)),
                                  schema=pq.ParquetFile(part.path).schema_arrow)
    keyed = rekeyed(table.select(list(columns)), rekey, key.tokeniser())
    return write_part(keyed, Path(out_dir) / part_name(index, csv_out=False))


def _read_parts(output: Path, count: int) -> pa.Table:
    """The written partitions, in order, as one table."""
    tables = [pq.read_table(output / part_name(i, csv_out=False)) for i in range(count)]
    return pa.concat_tables(tables)
