"""The invariant checker itself: a clean data directory passes, and each planted fault is found.

Without these, a fault test that passes could be checking nothing.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from pseudogate.audit import AUDIT_DB_NAME
from pseudogate.store.catalog import Catalog

from .invariants import (
    CatalogState,
    InvariantReport,
    audit_agreement,
    check_invariant,
    read_catalog,
)
from .workload import PEOPLE, RAW_IDENTIFIERS, TEMPLATE_PROJECT

SUBMIT = "/pseudogate.v1.DatasetService/SubmitDataset"
GP_V1 = "gp_diagnoses v1 (datasets/gp_diagnoses/1.parquet)"
COUNCIL_V1 = "council_care v1 (datasets/council_care/1.parquet)"
HOLDS = "holds raw identifiers of the test data"


def test_when_the_template_is_untouched_then_every_part_of_the_invariant_holds(
    data_dir: Path, invariant: Callable[..., InvariantReport]
) -> None:
    report = invariant(data_dir)
    assert sorted({c[:3] for c in report.checked}) == ["(a)", "(b)", "(c)", "(d)", "(e)"]
    # Events carry change ids, so the reverse half of (d) is checked too, not only announced.
    assert any("committed or reconciled" in c for c in report.checked), report.checked
    assert not report.skipped, report.skipped


def _remove_a_version_file(data: Path) -> None:
    (data / "datasets" / "gp_diagnoses" / "1.parquet").unlink()


def _truncate_a_version_file(data: Path) -> None:
    path = data / "datasets" / "council_care" / "1.parquet"
    path.write_bytes(path.read_bytes()[:100])


def _add_an_unnamed_version(data: Path) -> None:
    (data / "datasets" / "gp_diagnoses" / "7.parquet").write_bytes(b"PAR1")


def _leave_a_staging_file_beside_the_catalog(data: Path) -> None:
    (data / ".catalog.sqlite3.abc.tmp").write_bytes(b"")


def _commit_a_project_without_an_event(data: Path) -> None:
    with sqlite3.connect(data / Catalog.FILE_NAME) as db:
        db.execute(
            "INSERT INTO projects SELECT 'ghost', researcher, datasets_json, domain, policy_text,"
            " policy_files_json, policy_fingerprint, project_key_id, expires, created_at,"
            " linkage, linkage_threshold, title, purpose, legal_basis, public_benefit"
            " FROM projects WHERE id = ?",
            (TEMPLATE_PROJECT,),
        )
    db.close()


def _edit_an_audit_event(data: Path) -> None:
    with sqlite3.connect(data / AUDIT_DB_NAME) as db:
        body = json.loads(db.execute("SELECT body FROM events WHERE seq = 2").fetchone()[0])
        body["counts"]["rows"] += 1
        text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        db.execute("UPDATE events SET body = ? WHERE seq = 2", (text,))
    db.close()


def _spell_an_nhs_number_in_a_staging_file(data: Path) -> None:
    number = PEOPLE[3].nhs_number
    (data / "tmp" / "left-over").write_bytes(f"x{number[:3]} {number[3:6]} {number[6:]}x".encode())


def _hide_an_email_in_the_catalog(data: Path) -> None:
    with sqlite3.connect(data / Catalog.FILE_NAME) as db:
        db.execute(
            "UPDATE datasets SET owner = ? WHERE name = 'council_care'",
            (PEOPLE[9].email.upper(),),
        )
    db.close()


@pytest.mark.parametrize(
    ("plant", "expected"),
    [
        (_remove_a_version_file, f"(a) {GP_V1}: the file does not exist"),
        (_truncate_a_version_file, f"(a) {COUNCIL_V1}: unreadable"),
        (_add_an_unnamed_version, "(b) datasets/gp_diagnoses/7.parquet is not named"),
        (_leave_a_staging_file_beside_the_catalog, "(b) unexpected file .catalog.sqlite3.abc.tmp"),
        (_commit_a_project_without_an_event, "(d) catalog: project 'ghost' is committed but no OK"),
        (_edit_an_audit_event, "(c) the audit log does not verify: first bad sequence number 2"),
        (_spell_an_nhs_number_in_a_staging_file, f"(e) tmp/left-over {HOLDS}: 1 NHS number(s)"),
        (_hide_an_email_in_the_catalog, f"(e) catalog.sqlite3 {HOLDS}: 1 email(s)"),
    ],
    ids=lambda v: v.__name__.strip("_") if callable(v) else "",
)
def test_when_a_fault_is_planted_then_the_invariant_names_it(
    data_dir: Path,
    public_keys: list[Ed25519PublicKey],
    plant: Callable[[Path], None],
    expected: str,
) -> None:
    plant(data_dir)
    report = check_invariant(data_dir, public_keys=public_keys, raw_identifiers=RAW_IDENTIFIERS)
    assert any(p.startswith(expected) for p in report.problems), str(report)


def test_when_files_are_only_in_quarantine_or_staging_then_they_are_allowed(
    data_dir: Path, invariant: Callable[..., InvariantReport]
) -> None:
    (data_dir / "quarantine" / "gp_diagnoses").mkdir(parents=True)
    (data_dir / "quarantine" / "gp_diagnoses" / "9.parquet").write_bytes(b"PAR1")
    (data_dir / "tmp" / "submission-0.parquet.tmp").write_bytes(b"PAR1")
    invariant(data_dir)


def _event(seq: int, status: str = "OK", **details: object) -> dict[str, object]:
    event: dict[str, object] = {
        "seq": seq, "method": SUBMIT, "dataset": "gp_diagnoses", "project": None,
        "counts": {"rows": 5}, "status": status,
    }
    if details:
        event["details"] = details
    return event


def test_when_an_ok_change_never_committed_then_only_the_reconciliation_check_objects(
    data_dir: Path,
) -> None:
    empty = CatalogState(versions={}, projects=frozenset(), snapshots={})
    change = "0" * 32
    orphan = [_event(1, change=change)]
    assert audit_agreement(empty, orphan, reconciliation=False) == []
    (problem,) = audit_agreement(empty, orphan, reconciliation=True)
    assert problem.startswith("audit: event 1 (OK SubmitDataset")
    assert "no later event reconciles" in problem
    for follow_up in (_event(2, "ABORTED", change=change), _event(2, "OK", reconciles=1)):
        assert audit_agreement(empty, [*orphan, follow_up], reconciliation=True) == []
    committed = read_catalog(data_dir)
    assert committed.versions[("gp_diagnoses", 1)][1] == 250
    named = [_event(1, change=change, version=1) | {"counts": {"rows": 250}}]
    with_gp = CatalogState(
        versions={("gp_diagnoses", 1): committed.versions[("gp_diagnoses", 1)]},
        projects=frozenset(), snapshots={},
    )
    assert audit_agreement(with_gp, named, reconciliation=True) == []
    assert audit_agreement(with_gp, [], reconciliation=True) == [
        (
            "catalog: dataset 'gp_diagnoses' version 1 is committed but no OK SubmitDataset "
            "event records it"
        )
    ]
