"""Bytes that are not UTF-8 in an Arrow utf8 column are row errors, never stored (issue 14 #4)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pseudogate.core.arrow_ipc import ipc_stream_bytes
from pseudogate.core.columns import invalid_utf8_rows, valid_text
from pseudogate.core.errors import RowErrors
from pseudogate.gateway import Store
from tests.statements import STATEMENTS

from .helpers import files_under, gp_columns, people, submit

BAD = b"\xff\xfe"  # never valid UTF-8


def _table(columns: dict[str, list[str]], raw: dict[tuple[str, int], bytes]) -> pa.Table:
    """A utf8 table whose cells ``raw[(column, index)]`` hold the given (invalid) bytes."""
    arrays = {}
    for name, values in columns.items():
        data = [raw.get((name, i), v.encode("utf-8")) for i, v in enumerate(values)]
        arrays[name] = pa.array(data, type=pa.binary()).view(pa.string())
    return pa.table(arrays)


def test_when_a_kept_column_holds_invalid_utf8_then_the_row_and_column_are_reported(
    store: Store, data_dir: Path
) -> None:
    columns = gp_columns(people(4))
    payload = ipc_stream_bytes(_table(columns, {("diagnosis", 2): b"D" + BAD}))
    with pytest.raises(RowErrors) as caught:
        submit(store, "gp_diagnoses", "gp", "gp-org", payload)
    assert [(e.row, e.column, e.reason) for e in caught.value.errors] == [
        (3, "diagnosis", "invalid_utf8")
    ]
    assert files_under(data_dir) == ["catalog.sqlite3", "store.lock"]


def test_when_tokenised_and_dropped_columns_hold_invalid_utf8_then_each_is_a_row_error(
    store: Store,
) -> None:
    columns = gp_columns(people(5))
    columns["nhs_number"][4] = ""  # an ordinary row error is still reported alongside
    raw = {("nhs_number", 1): BAD, ("given_name", 3): b"\xc3", ("email", 1): b"a@" + BAD}
    payload = ipc_stream_bytes(_table(columns, raw))
    with pytest.raises(RowErrors) as caught:
        submit(store, "gp_diagnoses", "gp", "gp-org", payload)
    assert [(e.row, e.column, e.reason) for e in caught.value.errors] == [
        (2, "nhs_number", "invalid_utf8"),
        (2, "email", "invalid_utf8"),
        (4, "given_name", "invalid_utf8"),
        (5, "nhs_number", "empty"),
    ]
    assert store.catalog.dataset_names() == []


def test_when_invalid_utf8_is_in_a_later_message_then_rows_count_across_messages(
    store: Store,
) -> None:
    rows = people(4)
    first = ipc_stream_bytes(_table(gp_columns(rows[:2]), {}))
    second = ipc_stream_bytes(_table(gp_columns(rows[2:]), {("sex", 1): BAD}))
    with pytest.raises(RowErrors) as caught:
        submit(store, "gp_diagnoses", "gp", "gp-org", first, second)
    assert [(e.row, e.column, e.reason) for e in caught.value.errors] == [(4, "sex", "invalid_utf8")]


def test_when_values_are_valid_then_valid_text_returns_them_unchanged() -> None:
    array = pa.chunked_array([pa.array(["a", None, "Zoë"]), pa.array(["b"])])
    text, bad = valid_text(array)
    assert (text.to_pylist(), bad) == (["a", "", "Zoë", "b"], [])


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=6), st.text(max_size=4).map(str.encode)), max_size=30))
def test_when_bytes_are_checked_then_exactly_the_non_utf8_values_are_found(
    values: list[bytes],
) -> None:
    def is_utf8(raw: bytes) -> bool:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            return False
        return True

    array = pa.array(values, type=pa.binary()).view(pa.string())
    assert invalid_utf8_rows(array) == [i for i, v in enumerate(values) if not is_utf8(v)]
    text, bad = valid_text(array)
    text.validate(full=True)
    assert all(text[i].as_py() == "" for i in bad)


def test_when_a_stored_version_holds_invalid_utf8_then_extracts_are_refused_clearly(
    store: Store,
) -> None:
    """A version stored before submissions were checked (written here behind the store's back)."""
    import pyarrow.parquet as pq

    from pseudogate.core.errors import FailedPrecondition

    from .helpers import council_columns
    from .test_projects import POLICY

    submit(store, "gp_diagnoses", "gp", "gp-org", ipc_stream_bytes(_table(gp_columns(people(3)), {})))
    submit(store, "social_care", "council", "council-org",
           ipc_stream_bytes(_table(council_columns(people(3)), {})))
    store.create_project(**STATEMENTS, project_id="p1", researcher="uni",
                         datasets=["gp_diagnoses", "social_care"], policy_text=POLICY,
                         expires="2025-12-31")
    version = store.catalog.latest_version("gp_diagnoses")
    assert version is not None
    path = store.files.path(version.file)
    table = pq.read_table(path)
    column = table.schema.get_field_index("diagnosis")
    broken = pa.array([b"D1", b"D\xff", b"D3"], pa.binary()).view(pa.string())
    pq.write_table(table.set_column(column, table.schema.field(column), broken), path)
    with pytest.raises(FailedPrecondition, match="not UTF-8.*resubmit it"):
        store.build_extract("p1", organisation="uni")
