"""How a tokenise partition is read and written: whole partitions as one batch when they fit
(so repeats across row groups are tokenised once), no statistics for the token column."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pseudogate.batch import inputs as batch_inputs
from pseudogate.batch.inputs import find_inputs, read_batches
from pseudogate.batch.runner import InProcess
from pseudogate.batch.tokenise import tokenise_parts
from pseudogate.core.keyring import Keyring
from pseudogate.core.normalise import Kind

from .conftest import EXAMPLE_KEYRING
from .test_tokenise_dask import HEADER, read_rows, valid_nhs, write_csv, write_parts


def _rows(n: int) -> list[list[str]]:
    return [[str(i), valid_nhs(7 * (i % 50)), f"n{i}"] for i in range(n)]


def test_a_partition_that_fits_comes_as_one_batch_and_a_large_one_in_bounded_batches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    parts = write_parts(tmp_path / "parts", _rows(300), [300], group=40)
    inputs = find_inputs(parts)
    (part,) = inputs.parts
    assert len(part.row_groups) == 8
    small = [b.num_rows for b in read_batches(part, columns=inputs.columns, batch_rows=50)]
    assert small == [50] * 6
    whole = [b.num_rows for b in read_batches(part, columns=inputs.columns, batch_rows=50,
                                              whole=True)]
    assert whole == [300]
    monkeypatch.setattr(batch_inputs, "BATCH_BYTES", 1)  # nothing fits: batch_rows is the floor
    assert [b.num_rows for b in read_batches(part, columns=inputs.columns, batch_rows=50,
                                             whole=True)] == [50] * 6
    monkeypatch.setattr(batch_inputs, "BATCH_BYTES", 1 << 30)
    monkeypatch.setattr(batch_inputs, "MAX_BATCH_ROWS", 120)
    assert [b.num_rows for b in read_batches(part, columns=inputs.columns, batch_rows=50,
                                             whole=True)] == [120, 120, 60]


def test_the_token_column_has_no_statistics_and_the_others_keep_theirs(tmp_path: Path) -> None:
    rows = _rows(200)
    parts = write_parts(tmp_path / "parts", rows, [120, 80], group=30)
    key = Keyring.load(EXAMPLE_KEYRING).linkage_key_to_ship("person")
    done = tokenise_parts(find_inputs(parts), tmp_path / "out", runner=InProcess(), column="nhs",
                          kind=Kind.NHS_NUMBER, key=key, input_label="parts")
    assert done == 200
    src = write_csv(tmp_path / "in.csv", rows)
    local = tokenise_parts(find_inputs(src), tmp_path / "local.csv", runner=InProcess(),
                           column="nhs", kind=Kind.NHS_NUMBER, key=key, input_label="in.csv")
    assert local == 200
    assert read_rows(tmp_path / "out") == read_rows(tmp_path / "local.csv")
    for path in sorted((tmp_path / "out").glob("*.parquet")):
        meta = pq.ParquetFile(path).metadata
        assert meta.num_row_groups == 1  # the partition's row groups were read as one batch
        group = meta.row_group(0)
        stats = {group.column(i).path_in_schema: group.column(i).is_stats_set
                 for i in range(group.num_columns)}
        assert stats == {"id": True, "nhs": False, "note": True}
        assert pq.read_schema(path) == pa.schema([(n, pa.string()) for n in HEADER])
