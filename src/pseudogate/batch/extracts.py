"""An extract's k-anonymity step on a Dask cluster (``pseudogate serve --dask-scheduler``).

:class:`ClusterAnonymiser` has the call of ``pseudogate.anonymity.anonymise`` (the gateway's
``anonymiser=`` seam): the gateway joins, removes opt-outs and re-keys to project tokens as it
always does, then hands the table here. It is written as Parquet partitions into a private
working folder, and :func:`pseudogate.batch.anonymise.anonymise_parts` runs on the cluster:
the workers scan and count the frequency table, the client runs the unchanged exact search,
the workers write the kept rows. The partitions are read back in order, so the released
table, and with it the manifest and its content hash, are those of the local path.

The workers must see the working folder (the same machine, or a filesystem shared with the
gateway). Dask is imported only when an extract is built, never by importing this module.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pseudogate.anonymity.report import AnonymisationReport
from pseudogate.batch.anonymise import anonymise_parts
from pseudogate.batch.inputs import Inputs, Part
from pseudogate.batch.outputs import open_private, part_name
from pseudogate.batch.runner import Runner, check_scheduler_address, dask_runner
from pseudogate.core.errors import InvalidInput
from pseudogate.core.keyring import Keyring
from pseudogate.core.policy import Policy

__all__ = ["CLUSTER_WORK_DIR", "ROWS_PER_PARTITION", "ClusterAnonymised", "ClusterAnonymiser"]

#: The working folder's name in a gateway's data directory.
CLUSTER_WORK_DIR = "cluster-work"
#: Rows of the extract per partition sent to the workers.
ROWS_PER_PARTITION = 1_000_000


@dataclass(frozen=True)
class ClusterAnonymised:
    """The released table (text cells, rows in the input's order) and its report."""

    table: pd.DataFrame
    report: AnonymisationReport


class ClusterAnonymiser:
    """Anonymises extracts on the Dask scheduler at ``scheduler`` (checked now: ``tls://``, or
    ``tcp://`` on this machine only). ``work_dir``: where the partitions are written (None:
    the system's temporary folder); ``runner``: an already connected runner (tests)."""

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
        if policy.privacy is None:
            raise InvalidInput(f"policy {policy.name!r} has no privacy section: nothing to "
                               "anonymise against")
        if self.work_dir is not None:
            self.work_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        folder = Path(tempfile.mkdtemp(prefix="extract-", dir=self.work_dir))  # mode 0700
        try:
            inputs = self._write_parts(table, folder / "in")
            output = folder / "out"
            if self._runner is not None:
                result = anonymise_parts(inputs, output, policy, runner=self._runner,
                                         keyring=keyring, person_column=person_column)
            else:
                with dask_runner(scheduler=self.scheduler) as runner:
                    result = anonymise_parts(inputs, output, policy, runner=runner,
                                             keyring=keyring, person_column=person_column)
            released = _read_parts(output, len(inputs.parts))
            return ClusterAnonymised(released.to_pandas(), result.report)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def _write_parts(self, frame: pd.DataFrame, folder: Path) -> Inputs:
        folder.mkdir(mode=0o700)
        columns = tuple(str(c) for c in frame.columns)
        schema = pa.schema([(c, pa.string()) for c in columns])
        parts: list[Part] = []
        starts = range(0, max(len(frame), 1), self.rows_per_partition)
        for i, start in enumerate(starts):
            piece = frame.iloc[start : start + self.rows_per_partition]
            arrays = [pa.array(piece[c].to_numpy(dtype=object), type=pa.string())
                      for c in frame.columns]
            path = folder / part_name(i, csv_out=False)
            with open(open_private(path), "wb") as sink:
                pq.write_table(pa.Table.from_arrays(arrays, schema=schema), sink,
                               row_group_size=max(len(piece), 1))
            groups = pq.ParquetFile(path).metadata.num_row_groups
            parts.append(Part(path=str(path), csv=False, row_groups=tuple(range(groups)),
                              rows=len(piece)))
        return Inputs(parts=tuple(parts), columns=columns, schema=schema)


def _read_parts(output: Path, count: int) -> pa.Table:
    """The written partitions, in order, as one table."""
    tables = [pq.read_table(output / part_name(i, csv_out=False)) for i in range(count)]
    return pa.concat_tables(tables)
