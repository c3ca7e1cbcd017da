"""The rule in the store: plan → record (the audit event) → commit; no record, no commit."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from pseudogate.core.errors import Unavailable
from pseudogate.core.keyring import Keyring
from pseudogate.core.policy import Policy
from pseudogate.gateway import Store
from pseudogate.gateway.changes import ChangeFacts
from pseudogate.store.catalog import Catalog
from tests.statements import STATEMENTS

from .helpers import files_under, gp_columns, ipc, people, submit

POLICY = """\
version: 1
name: p
columns:
  person:                     {action: keep}
  gp_diagnoses.email:         {action: drop}
  gp_diagnoses.date_of_birth: {action: drop}
  gp_diagnoses.sex:           {action: generalise, hierarchy: {type: suppress}}
  gp_diagnoses.diagnosis:     {action: keep}
privacy: {k: 2}
"""


def _refuse(facts: ChangeFacts) -> None:
    raise Unavailable("audit log unavailable")


class Recorded:
    def __init__(self) -> None:
        self.facts: list[ChangeFacts] = []

    def __call__(self, facts: ChangeFacts) -> None:
        self.facts.append(facts)


@pytest.fixture
def populated(store: Store) -> Store:
    submit(store, "gp_diagnoses", "gp", "gp-org", ipc(gp_columns(people(5))))
    return store


def _project(project_id: str = "p1") -> dict[str, object]:
    return {
        "project_id": project_id,
        "researcher": "uni",
        "datasets": ["gp_diagnoses"],
        "policy_text": POLICY,
        "expires": "2025-12-31",
    }


def test_when_the_event_cannot_be_recorded_then_no_submission_is_stored(
    populated: Store, data_dir: Path
) -> None:
    before = files_under(data_dir)
    sub = populated.begin_submission(dataset="gp_diagnoses", policy_name="gp", organisation="gp-org")
    sub.add_arrow_ipc(ipc(gp_columns(people(4))))
    sub.prepare()
    with pytest.raises(Unavailable):
        sub.commit(record=_refuse)
    assert [v.version for v in populated.versions("gp_diagnoses")] == [1]
    assert files_under(data_dir) == before


def test_when_a_submission_is_recorded_then_the_facts_name_the_version_it_creates(
    populated: Store,
) -> None:
    recorded = Recorded()
    sub = populated.begin_submission(dataset="gp_diagnoses", policy_name="gp", organisation="gp-org")
    sub.add_arrow_ipc(ipc(gp_columns(people(4))))
    sub.prepare()
    result = sub.commit(record=recorded)
    (facts,) = recorded.facts
    assert facts.details == {"version": result.version} and result.version == 2
    assert facts.counts == {"rows": 4} and facts.key_ids == {"linkage": "lk1"}
    assert populated.catalog.applied([sub.change_id, "0" * 32]) == {sub.change_id}


def test_when_the_event_cannot_be_recorded_then_no_project_is_stored(populated: Store) -> None:
    with pytest.raises(Unavailable):
        populated.create_project(**STATEMENTS, **_project(), record=_refuse)
    assert populated.catalog.project("p1") is None
    recorded = Recorded()
    record = populated.create_project(**STATEMENTS, **_project(), record=recorded)
    (facts,) = recorded.facts
    assert facts.project == "p1" and facts.key_ids == {"project": record.project_key_id}
    assert facts.details == {"researcher": "uni", "datasets": ["gp_diagnoses"],
                             "domain": "person", "expires": "2025-12-31", "linkage": "exact",
                             **STATEMENTS}


def test_when_the_event_cannot_be_recorded_then_the_previous_snapshot_stays_latest(
    populated: Store,
) -> None:
    numbers = [p["nhs_number"] for p in people(6)]
    first = populated.import_optouts(numbers[:3])
    with pytest.raises(Unavailable):
        populated.import_optouts(numbers, record=_refuse)
    assert populated.latest_optout_snapshot() == first
    recorded = Recorded()
    second = populated.import_optouts(numbers, record=recorded)
    (facts,) = recorded.facts
    assert second.id == first.id + 1 == facts.counts["snapshot"]
    assert facts.details == {"domain": "person", "previous_snapshot": first.id,
                             "previous_people": 3}


def test_when_a_catalog_predates_applied_changes_then_opening_adds_the_tables(
    data_dir: Path, keyring: Keyring, policies: dict[str, Policy]
) -> None:
    data_dir.mkdir(parents=True)
    with sqlite3.connect(data_dir / Catalog.FILE_NAME) as db:
        db.execute("CREATE TABLE datasets (name TEXT PRIMARY KEY, owner TEXT NOT NULL,"
                   " created_at TEXT NOT NULL)")
        db.execute("INSERT INTO datasets VALUES ('gp_old', 'gp-org', '2025-01-01T00:00:00Z')")
    with Store.open(data_dir, keyring=keyring, policies=policies) as store:
        assert store.catalog.dataset_owner("gp_old") == "gp-org"
        assert store.catalog.reconciled_through() == 0
        store.catalog.set_reconciled_through(7)
        assert store.catalog.reconciled_through() == 7
        assert store.catalog.applied(["a" * 32]) == set()


def test_when_submissions_commit_concurrently_then_each_event_names_its_own_version(
    populated: Store,
) -> None:
    """The plan runs in the commit's transaction, so no other commit can take its version."""
    from concurrent.futures import ThreadPoolExecutor

    def one(n: int) -> tuple[int, list[ChangeFacts]]:
        recorded = Recorded()
        sub = populated.begin_submission(
            dataset="gp_diagnoses", policy_name="gp", organisation="gp-org"
        )
        sub.add_arrow_ipc(ipc(gp_columns(people(3 + n, seed=n))))
        sub.prepare()
        return sub.commit(record=recorded).version, recorded.facts

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(one, range(8)))
    assert sorted(version for version, _ in results) == list(range(2, 10))
    for version, (facts,) in results:
        assert facts.details["version"] == version
