"""Submissions: policy applied per column, all or nothing, versions, ownership."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pseudogate.core.arrow_ipc import ipc_stream_bytes
from pseudogate.core.errors import (
    FailedPrecondition,
    InvalidInput,
    PermissionDenied,
    ResourceExhausted,
    RowErrors,
    Unavailable,
)
from pseudogate.core.keyring import Keyring
from pseudogate.core.policy import Policy
from pseudogate.gateway import MAX_MESSAGE_BYTES, Store
from pseudogate.gateway.ingestion import MAX_ROW_ERRORS

from .helpers import (
    Clock,
    files_under,
    gp_columns,
    ipc,
    linkage_token,
    people,
    submit,
)

COMMITTED_NOTHING = ["catalog.sqlite3", "store.lock"]


def _assert_nothing_stored(store: Store, data_dir: Path) -> None:
    assert files_under(data_dir) == COMMITTED_NOTHING
    assert store.catalog.dataset_names() == []
    assert store.versions("gp_diagnoses") == []


def test_when_submitted_then_tokens_kept_values_and_no_dropped_columns_are_stored(
    store: Store,
) -> None:
    rows = people(3)
    columns = gp_columns(rows)
    columns["nhs_number"][1] = "999 " + columns["nhs_number"][1][3:]  # a messy spelling
    result = submit(store, "gp_diagnoses", "gp", "gp-org", ipc(columns))
    assert (result.dataset, result.version, result.rows, result.key_id) == ("gp_diagnoses", 1, 3, "lk1")
    assert result.policy_fingerprint == store.policies["gp"].fingerprint
    stored = store.read_version("gp_diagnoses")
    assert stored.column_names == ["nhs_number", "email", "date_of_birth", "sex", "diagnosis"]
    assert all(f.type == pa.string() and not f.nullable for f in stored.schema)
    assert stored.column("nhs_number").to_pylist() == [linkage_token(r["nhs_number"]) for r in rows]
    assert stored.column("email").to_pylist() == [linkage_token(r["email"], "email") for r in rows]
    assert stored.column("date_of_birth").to_pylist() == [r["date_of_birth"] for r in rows]


def test_when_kept_value_is_null_or_empty_then_it_is_stored_as_empty(store: Store) -> None:
    columns = gp_columns(people(3))
    columns["diagnosis"] = [None, "", "J45"]
    submit(store, "gp_diagnoses", "gp", "gp-org", ipc(columns))
    diagnosis = store.read_version("gp_diagnoses").column("diagnosis")
    assert diagnosis.null_count == 0
    assert diagnosis.to_pylist() == ["", "", "J45"]


def test_when_submission_has_several_messages_then_rows_are_numbered_across_them(
    store: Store, data_dir: Path
) -> None:
    rows = people(6)
    first, second = gp_columns(rows[:3]), gp_columns(rows[3:])
    second["nhs_number"][1] = ""  # row 5 of the submission
    second["email"][2] = "no-at-sign"  # row 6
    secret = second["email"][2]
    sub = store.begin_submission(dataset="gp_diagnoses", policy_name="gp", organisation="gp-org")
    assert sub.add_arrow_ipc(ipc(first)) == 3
    sub.add_arrow_ipc(ipc(second))
    with pytest.raises(RowErrors) as caught:
        sub.prepare()
    found = [(e.row, e.column, e.reason) for e in caught.value.errors]
    assert found == [(5, "nhs_number", "empty"), (6, "email", "bad_format")]
    assert secret not in str(caught.value)
    _assert_nothing_stored(store, data_dir)


def test_when_tokenised_value_is_null_then_it_is_invalid_empty(store: Store, data_dir: Path) -> None:
    columns = gp_columns(people(2))
    columns["nhs_number"][0] = None
    with pytest.raises(RowErrors) as caught:
        submit(store, "gp_diagnoses", "gp", "gp-org", ipc(columns))
    assert [(e.row, e.reason) for e in caught.value.errors] == [(1, "empty")]
    _assert_nothing_stored(store, data_dir)


def test_when_check_digit_is_wrong_then_row_and_reason_are_reported_without_value(
    store: Store, data_dir: Path
) -> None:
    columns = gp_columns(people(4))
    good = columns["nhs_number"][2]
    bad = good[:9] + str((int(good[9]) + 1) % 10)
    columns["nhs_number"][2] = bad
    with pytest.raises(RowErrors) as caught:
        submit(store, "gp_diagnoses", "gp", "gp-org", ipc(columns))
    assert [(e.row, e.column, e.reason) for e in caught.value.errors] == [
        (3, "nhs_number", "invalid_check_digit")
    ]
    assert bad not in str(caught.value) and good not in str(caught.value)
    _assert_nothing_stored(store, data_dir)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c.update(extra=["x"] * len(c["sex"])), "input column 8 is not named"),
        (lambda c: c.pop("sex"), "'sex' named in policy"),
    ],
    ids=["unlisted column", "missing column"],
)
def test_when_columns_differ_from_policy_then_submission_is_refused(
    store: Store, data_dir: Path, change: object, message: str
) -> None:
    columns = gp_columns(people(2))
    change(columns)  # type: ignore[operator]
    with pytest.raises(InvalidInput, match=message):
        submit(store, "gp_diagnoses", "gp", "gp-org", ipc(columns))
    _assert_nothing_stored(store, data_dir)


def test_when_a_column_is_not_utf8_then_submission_is_refused(store: Store, data_dir: Path) -> None:
    columns = gp_columns(people(2))
    table = pa.table({k: pa.array(v) for k, v in columns.items()}).set_column(
        5, "sex", pa.array([1, 2], type=pa.int64())
    )
    with pytest.raises(InvalidInput, match="'sex' has Arrow type int64"):
        submit(store, "gp_diagnoses", "gp", "gp-org", ipc_stream_bytes(table))
    _assert_nothing_stored(store, data_dir)


def test_when_a_later_message_has_another_schema_then_submission_is_aborted(
    store: Store, data_dir: Path
) -> None:
    rows = people(4)
    second = gp_columns(rows[2:])
    reordered = {k: second[k] for k in reversed(list(second))}
    sub = store.begin_submission(dataset="gp_diagnoses", policy_name="gp", organisation="gp-org")
    sub.add_arrow_ipc(ipc(gp_columns(rows[:2])))
    with pytest.raises(InvalidInput, match="message 2: its schema differs"):
        sub.add_arrow_ipc(ipc(reordered))
    with pytest.raises(FailedPrecondition):
        sub.prepare()
    _assert_nothing_stored(store, data_dir)


@pytest.mark.parametrize("cut", [1, 8, 100], ids=["one byte short", "no end marker", "truncated"])
def test_when_stream_is_broken_then_nothing_is_stored(
    store: Store, data_dir: Path, cut: int
) -> None:
    payload = ipc(gp_columns(people(20)))
    sub = store.begin_submission(dataset="gp_diagnoses", policy_name="gp", organisation="gp-org")
    sub.add_arrow_ipc(payload)  # a good first message reaches the temporary file
    with pytest.raises(InvalidInput, match="message 2 is not"):
        sub.add_arrow_ipc(payload[:-cut])
    _assert_nothing_stored(store, data_dir)


def test_when_message_is_over_32_mib_then_it_is_refused(store: Store, data_dir: Path) -> None:
    sub = store.begin_submission(dataset="gp_diagnoses", policy_name="gp", organisation="gp-org")
    with pytest.raises(ResourceExhausted, match="32 MiB"):
        sub.add_arrow_ipc(b"\0" * (MAX_MESSAGE_BYTES + 1))
    _assert_nothing_stored(store, data_dir)


def test_when_submission_is_empty_then_it_is_refused(store: Store, data_dir: Path) -> None:
    sub = store.begin_submission(dataset="gp_diagnoses", policy_name="gp", organisation="gp-org")
    with pytest.raises(InvalidInput, match="no Arrow IPC data"):
        sub.prepare()
    sub = store.begin_submission(dataset="gp_diagnoses", policy_name="gp", organisation="gp-org")
    sub.add_arrow_ipc(ipc({k: [] for k in gp_columns([])}))
    with pytest.raises(InvalidInput, match="no records"):
        sub.prepare()
    _assert_nothing_stored(store, data_dir)


def test_when_aborted_after_prepare_then_nothing_is_stored(store: Store, data_dir: Path) -> None:
    with store.begin_submission(
        dataset="gp_diagnoses", policy_name="gp", organisation="gp-org"
    ) as sub:
        sub.add_arrow_ipc(ipc(gp_columns(people(5))))
        summary = sub.prepare()
        assert summary.rows == 5 and summary.columns[0] == "nhs_number"
        assert len(files_under(data_dir)) == 3  # the catalog, the lock and the temporary file
        # the audit write fails here: leaving the block without commit aborts
    _assert_nothing_stored(store, data_dir)
    with pytest.raises(FailedPrecondition):
        sub.commit()


@pytest.mark.parametrize("name", ["", "GP", "1gp", "gp-diag", "g" * 64, "gp diag"])
def test_when_dataset_name_is_invalid_then_refused(store: Store, name: str) -> None:
    with pytest.raises(InvalidInput, match=r"\[a-z\]\[a-z0-9_\]\{0,62\}"):
        store.begin_submission(dataset=name, policy_name="gp", organisation="gp-org")


def test_when_policy_is_not_registered_then_refused(store: Store) -> None:
    with pytest.raises(InvalidInput, match="no ingestion policy named 'nope'"):
        store.begin_submission(dataset="gp", policy_name="nope", organisation="gp-org")


def test_when_submitted_repeatedly_then_versions_are_consecutive_and_assigned_at_commit(
    store: Store,
) -> None:
    rows = people(9)
    a = store.begin_submission(dataset="gp_diagnoses", policy_name="gp", organisation="gp-org")
    b = store.begin_submission(dataset="gp_diagnoses", policy_name="gp", organisation="gp-org")
    a.add_arrow_ipc(ipc(gp_columns(rows[:2])))
    b.add_arrow_ipc(ipc(gp_columns(rows[2:5])))
    a.prepare()
    b.prepare()
    assert b.commit().version == 1  # the first to commit gets version 1
    assert a.commit().version == 2
    assert submit(store, "gp_diagnoses", "gp", "gp-org", ipc(gp_columns(rows[5:]))).version == 3
    versions = store.versions("gp_diagnoses")
    assert [(v.version, v.rows) for v in versions] == [(1, 3), (2, 2), (3, 4)]
    assert store.read_version("gp_diagnoses").num_rows == 4  # the latest
    assert store.read_version("gp_diagnoses", 1).num_rows == 3


def test_when_another_organisation_submits_then_permission_is_denied(
    store: Store, data_dir: Path
) -> None:
    rows = people(4)
    early = store.begin_submission(dataset="gp_diagnoses", policy_name="gp", organisation="other")
    early.add_arrow_ipc(ipc(gp_columns(rows[:2])))
    early.prepare()
    submit(store, "gp_diagnoses", "gp", "gp-org", ipc(gp_columns(rows)))
    with pytest.raises(PermissionDenied):  # it began before the owner committed
        early.commit()
    with pytest.raises(PermissionDenied):
        store.begin_submission(dataset="gp_diagnoses", policy_name="gp", organisation="other")
    assert files_under(data_dir) == sorted([*COMMITTED_NOTHING, "datasets/gp_diagnoses/1.parquet"])
    assert [v.organisation for v in store.versions("gp_diagnoses")] == ["gp-org"]


def test_when_store_reopens_after_a_crash_then_staging_is_removed_and_the_orphan_quarantined(
    store: Store, data_dir: Path, keyring: Keyring, policies: dict[str, Policy], clock: Clock
) -> None:
    submit(store, "gp_diagnoses", "gp", "gp-org", ipc(gp_columns(people(2))))
    sub = store.begin_submission(dataset="gp_diagnoses", policy_name="gp", organisation="gp-org")
    sub.add_arrow_ipc(ipc(gp_columns(people(3))))  # a crash here leaves a temporary file
    orphan = data_dir / "datasets" / "gp_diagnoses" / "2.parquet"  # renamed, never catalogued
    pq.write_table(pa.table({"x": ["y"]}), orphan)
    with pytest.raises(Unavailable, match="in use by another gateway"):
        Store.open(data_dir, keyring=keyring, policies=policies, clock=clock)
    store.close()  # the crashed gateway's lock is gone
    Store.open(data_dir, keyring=keyring, policies=policies, clock=clock).close()
    assert files_under(data_dir) == sorted(
        [
            *COMMITTED_NOTHING,
            "datasets/gp_diagnoses/1.parquet",
            "quarantine/20250601T120000Z/datasets/gp_diagnoses/2.parquet",  # moved, not deleted
        ]
    )


def test_when_too_many_values_are_invalid_then_submission_stops_at_once(
    store: Store, data_dir: Path
) -> None:
    columns = gp_columns(people(1, seed=3) * (MAX_ROW_ERRORS + 200))
    columns["nhs_number"] = ["12"] * len(columns["nhs_number"])
    sub = store.begin_submission(dataset="gp_diagnoses", policy_name="gp", organisation="gp-org")
    with pytest.raises(RowErrors, match="stopped after 1000") as caught:
        sub.add_arrow_ipc(ipc(columns))
    assert len(caught.value.errors) == MAX_ROW_ERRORS
    assert caught.value.errors[-1].row == MAX_ROW_ERRORS
    _assert_nothing_stored(store, data_dir)


def test_when_submissions_commit_concurrently_then_versions_are_distinct_and_consecutive(
    store: Store,
) -> None:
    rows = people(40)

    def one(n: int) -> int:
        return submit(store, "gp_diagnoses", "gp", "gp-org",
                      ipc(gp_columns(rows[n * 5 : n * 5 + 5]))).version

    with ThreadPoolExecutor(max_workers=4) as pool:
        versions = sorted(pool.map(one, range(8)))
    assert versions == list(range(1, 9))
    assert [v.version for v in store.versions("gp_diagnoses")] == versions
