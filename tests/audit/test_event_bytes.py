"""Appended events' bytes and hashes, pinned from the dict-building code before events were typed.

``vectors/appended_events.json`` holds the stored body and chain hash of each event below, as
the log wrote them when events were dictionaries: the typed :class:`AuditEvent` must give the
same canonical bytes and so the same chain (name sanitising, key id sorting, details).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from pseudogate.audit import AuditEvent, AuditLog, build_event
from pseudogate.core.keyring import Signer

from .conftest import StepClock

VECTORS = Path(__file__).parent / "vectors" / "appended_events.json"

CASES: list[AuditEvent] = [
    build_event(organisation="gp-denbigh", role="provider", method="/pseudogate.v1.TokenisationService/Tokenise",
         status="OK", dataset="gp_diagnoses", key_ids=["lk-2", "lk-1", "lk-2"], counts={"values": 3, "invalid": 0}),
    build_event(organisation="uni-bangor", role="researcher", method="/pseudogate.v1.ExtractService/CreateExtract",
         status="OK", project="asthma-2025", policy_fingerprint="3f" * 32,
         key_ids={"linkage": "lk-1", "project": "pk-1", "signing": "sk-1"}, counts={"rows": 10, "suppressed": 1, "datasets": 2},
         details={"datasets": ["gp_diagnoses", "ll112ab"], "versions": (1, 2), "content_sha256": "ab" * 32, "snapshot": 3}),
    build_event(organisation=None, role=None, method="/pseudogate.v1.AdminService/CreateProject", status="PERMISSION_DENIED",
         project="Jane Smith", dataset="9434765919"),
    build_event(organisation="ops", role="admin", method="/pseudogate.v1.AdminService/CreateProject", status="OK",
         project="p-1", details={"change": "0123456789abcdef" * 2, "researcher": "Dr Jane", "domain": "person",
                                  "expires": "2027-03-31", "datasets": ("gp_diagnoses",)}),
    build_event(organisation="ops", role="admin", method="/pseudogate.v1.AdminService/ImportOptOuts", status="ABORTED",
         details={"change": "0123456789abcdef" * 2, "reconciles": 4}),
]


def test_when_typed_events_are_appended_then_bodies_and_hashes_equal_the_pinned_ones(
    tmp_path: Path, signer: Signer
) -> None:
    path = tmp_path / "audit.sqlite3"
    with AuditLog.open(path, signer=signer, clock=StepClock(), checkpoint_seconds=0) as log:
        for case in CASES:
            log.append(case)
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT body, hash FROM events ORDER BY seq").fetchall()
    assert [[body, bytes(link).hex()] for body, link in rows] == json.loads(
        VECTORS.read_text(encoding="utf-8")
    )
