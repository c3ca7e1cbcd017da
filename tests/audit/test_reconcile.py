"""Start-up reconciliation against a ledger of applied changes (no store, no server)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

import pytest

from pseudogate.audit import AuditLog, build_event, verify_database
from pseudogate.audit.reconcile import ABORTED, reconcile

from .conftest import sample_event

METHOD = "/pseudogate.v1.AdminService/ImportOptOuts"


class Ledger:
    """The catalog's side, in memory: applied change ids and the watermark."""

    def __init__(self, applied: Iterable[str] = ()) -> None:
        self.committed = set(applied)
        self.through = 0
        self.asked: list[set[str]] = []

    def applied(self, change_ids: Iterable[str]) -> set[str]:
        wanted = set(change_ids)
        self.asked.append(wanted)
        return wanted & self.committed

    def reconciled_through(self) -> int:
        return self.through

    def set_reconciled_through(self, seq: int) -> None:
        self.through = seq


def _change(change: str, status: str = "OK", **details: Any) -> dict[str, Any]:
    return build_event(
        organisation="ops", role="admin", method=METHOD, status=status,
        details={"change": change, **details},
    )


A, B, C = "a" * 32, "b" * 32, "c" * 32


def test_when_an_audited_change_was_never_applied_then_a_follow_up_names_it(
    open_log: Callable[..., AuditLog], public_key: Any, caplog: pytest.LogCaptureFixture
) -> None:
    log = open_log()
    log.append(sample_event(1))
    log.append(_change(A, snapshot=1))
    log.append(_change(B, snapshot=2))
    with caplog.at_level(logging.WARNING):
        result = reconcile(log, Ledger(applied=[A]))
    follow_up = list(log.change_events(after_seq=3))
    assert result.follow_ups == (4,) and result.through_seq == 4
    assert [(e["status"], e["method"], e["organisation"], e["details"]) for e in follow_up] == [
        (ABORTED, METHOD, "ops", {"change": B, "reconciles": 3}),
    ]
    assert "1 audited change(s) were never committed" in caplog.text and B not in caplog.text
    log.close()
    assert verify_database(log.path, public_key).events == 4


def test_when_a_later_event_settles_a_change_then_no_follow_up_is_written(
    open_log: Callable[..., AuditLog],
) -> None:
    log = open_log()
    log.append(_change(A, snapshot=1))
    log.append(_change(A, status="INTERNAL", snapshot=1))  # the commit failed, and said so
    log.append(_change(B, snapshot=1))
    log.append(_change(B, status=ABORTED, reconciles=3))  # written before a crash
    assert reconcile(log, Ledger()).follow_ups == ()
    assert log.head()[0] == 4


def test_when_run_again_then_events_before_the_watermark_are_not_read_again(
    open_log: Callable[..., AuditLog],
) -> None:
    log = open_log()
    log.append(_change(A))
    ledger = Ledger()
    assert reconcile(log, ledger).follow_ups == (2,)
    log.append(_change(C))
    ledger.committed.add(C)
    second = reconcile(log, ledger)
    assert second.after_seq == 2 and second.follow_ups == ()
    assert ledger.asked[-1] == {C}  # A is behind the watermark: neither read nor followed up twice


def test_when_the_watermark_is_beyond_the_log_then_the_whole_log_is_checked(
    open_log: Callable[..., AuditLog],
) -> None:
    log = open_log()
    log.append(_change(A))
    ledger = Ledger()
    ledger.through = 50  # e.g. the audit database was replaced
    result = reconcile(log, ledger)
    assert result.after_seq == 0 and result.follow_ups == (2,)
