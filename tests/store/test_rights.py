"""People's rights in the store: every step follows THE rule (nothing committed unaudited),
and the subject access report is worked out from versions, manifests and opt-outs."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import pytest

from pseudogate.core.errors import FailedPrecondition, Unavailable
from pseudogate.core.rights import Requester
from pseudogate.gateway import Store
from pseudogate.gateway.changes import ChangeFacts, unaudited

from .helpers import Clock, gp_columns, ipc, people, submit

ADMIN = Requester("ops", "admin")
AUDITOR = Requester("audit-office", "auditor")


def _failing(facts: ChangeFacts) -> None:
    raise Unavailable("audit log unavailable")


def _rows(data_dir: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(data_dir / "catalog.sqlite3") as db:
        return db.execute(sql).fetchall()


def test_when_the_audit_event_cannot_be_written_then_no_step_is_committed(
    store: Store, data_dir: Path
) -> None:
    person = people(3)[1]
    submit(store, "gp_diagnoses", "gp", "gp-a", ipc(gp_columns(people(3))))
    rights = store.rights
    prepared = rights.prepare_subject_access(
        nhs_number=person["nhs_number"], reason="a letter", requester=ADMIN)
    with pytest.raises(Unavailable):
        prepared.commit(record=_failing)
    assert _rows(data_dir, "SELECT count(*) FROM rights_requests") == [(0,)]
    facts: list[ChangeFacts] = []
    view = rights.prepare_subject_access(
        nhs_number=person["nhs_number"], reason="a letter", requester=ADMIN,
    ).commit(record=facts.append)
    assert facts[0].details["request"] == view.row.id
    assert facts[0].details["request_status"] == "pending"
    assert person["nhs_number"] not in repr(facts) and "lk1_" not in repr(facts)
    with pytest.raises(Unavailable):
        rights.prepare_approval(view.row.id, approver=AUDITOR).commit(record=_failing)
    assert rights.view(view.row.id).status.value == "pending"
    rights.prepare_approval(view.row.id, approver=AUDITOR).commit(record=unaudited)
    with pytest.raises(Unavailable):
        rights.prepare_subject_access_report(view.row.id, caller=ADMIN).commit(record=_failing)
    report = rights.prepare_subject_access_report(view.row.id, caller=ADMIN).commit(
        record=unaudited)
    assert [(d["dataset"], d["records"]) for d in report["datasets"]] == [("gp_diagnoses", 1)]
    with pytest.raises(FailedPrecondition, match="once"):
        rights.prepare_subject_access_report(view.row.id, caller=ADMIN)
    applied = _rows(data_dir, "SELECT kind FROM applied_changes WHERE kind LIKE 'rights%'")
    assert sorted(k for (k,) in applied) == ["rights_approval", "rights_delivery", "rights_request"]


def test_when_the_catalog_is_searched_for_the_number_then_only_tokens_are_there(
    store: Store, data_dir: Path
) -> None:
    person = people(2)[0]
    store.rights.prepare_subject_access(
        nhs_number=person["nhs_number"], reason="a letter", requester=ADMIN,
    ).commit(record=unaudited)
    for path in data_dir.rglob("*"):
        if path.is_file():
            assert person["nhs_number"].encode() not in path.read_bytes()


def test_when_requests_pass_their_expiry_then_the_sweep_finds_each_once_and_records_it_as_a_change(
    store: Store, data_dir: Path, clock: Clock
) -> None:
    start = clock.now
    rights = store.rights
    first = rights.prepare_subject_access(
        nhs_number=people(1)[0]["nhs_number"], reason="a letter", requester=ADMIN,
    ).commit(record=unaudited)
    clock.now = start + dt.timedelta(days=3)
    second = rights.prepare_subject_access(
        nhs_number=people(2)[1]["nhs_number"], reason="a letter", requester=ADMIN,
    ).commit(record=unaudited)
    assert rights.due_expiries() == []
    clock.now = start + dt.timedelta(days=7)  # the first expires at exactly this moment
    assert rights.due_expiries() == [first.row.id]
    with pytest.raises(Unavailable):  # not audited: not recorded
        prepared = rights.prepare_expiry(first.row.id)
        assert prepared is not None
        prepared.commit(record=_failing)
    assert rights.due_expiries() == [first.row.id]
    facts: list[ChangeFacts] = []
    prepared = rights.prepare_expiry(first.row.id)
    assert prepared is not None
    stale = rights.prepare_expiry(first.row.id)  # prepared twice (a call and the sweep)
    assert prepared.commit(record=facts.append).status.value == "expired"
    assert stale is not None
    with pytest.raises(FailedPrecondition):  # the second finds it recorded: nothing written
        stale.commit(record=facts.append)
    assert len(facts) == 1 and facts[0].details["request_status"] == "expired"
    assert rights.due_expiries() == [] and rights.prepare_expiry(first.row.id) is None
    clock.now = start + dt.timedelta(days=11)
    assert rights.due_expiries() == [second.row.id]
    assert _rows(data_dir, "SELECT status FROM rights_requests ORDER BY created_at") == [
        ("expired",), ("pending",)]
    assert _rows(data_dir, "SELECT count(*) FROM applied_changes WHERE kind = 'rights_expiry'"
                 ) == [(1,)]
