"""Start-up reconciliation: the log never claims a change that did not happen.

Every state change writes its audit event (with a random change id in ``details.change``)
*before* it commits, and commits a row under the same id in the store's ``applied_changes``
(:mod:`pseudogate.gateway.changes`). If the process dies in between, the log says ``OK`` for a
change that was never stored. At start-up, before serving, :func:`reconcile` looks at every
event since the last reconciled sequence number: an ``OK`` event whose change id the store never
applied gets a follow-up event, status ``ABORTED``, naming the change id and the seq it settles.

A claim is already settled when a later event names the same change with another status (the
interceptor audits a commit that failed after its event) or is itself a follow-up (a crash
after a follow-up but before the watermark moved). Extracts carry no change id: nothing is
committed in the store, so there is nothing to reconcile.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from pseudogate.audit.events import build_event
from pseudogate.audit.log import AuditLog

__all__ = ["ABORTED", "ChangeLedger", "Reconciliation", "reconcile"]

log = logging.getLogger("pseudogate.audit")

#: The status of a follow-up event: the change its event announced was never committed.
ABORTED = "ABORTED"


class ChangeLedger(Protocol):
    """What reconciliation needs from the store (the catalog implements it)."""

    def applied(self, change_ids: Iterable[str]) -> set[str]: ...

    def reconciled_through(self) -> int: ...

    def set_reconciled_through(self, seq: int) -> None: ...


@dataclass(frozen=True, slots=True)
class Reconciliation:
    """What a reconciliation did: the seqs it looked at and the follow-up events it wrote."""

    after_seq: int
    through_seq: int
    follow_ups: tuple[int, ...]


def reconcile(audit_log: AuditLog, ledger: ChangeLedger) -> Reconciliation:
    """Append a follow-up event for every audited change the store never committed.

    Call it at start-up, after opening the store and the log and before serving: nothing may
    be committing meanwhile. The watermark (``reconciled_through``) keeps start-up fast on a
    long log. Raises Unavailable if a follow-up cannot be written (the gateway must not start).
    """
    head, _ = audit_log.head()
    after = ledger.reconciled_through()
    if after > head:
        log.warning(
            "audit reconciliation: the store was reconciled up to seq %d but the log ends at "
            "seq %d; checking the whole log", after, head,
        )
        after = 0
    claims: dict[str, tuple[int, dict[str, Any]]] = {}
    for event in audit_log.change_events(after_seq=after):
        details = event["details"]
        change = details["change"]
        if event.get("status") == "OK" and "reconciles" not in details:
            claims[change] = (event["seq"], event)
        else:
            claims.pop(change, None)
    applied = ledger.applied(claims)
    follow_ups: list[int] = []
    for change, (seq, event) in sorted(claims.items(), key=lambda item: item[1][0]):
        if change in applied:
            continue
        record = audit_log.append(
            build_event(
                organisation=event.get("organisation"),
                role=event.get("role"),
                method=event["method"],
                status=ABORTED,
                dataset=event.get("dataset"),
                project=event.get("project"),
                details={"change": change, "reconciles": seq},
            )
        )
        follow_ups.append(record["seq"])
    through, _ = audit_log.head()
    ledger.set_reconciled_through(through)
    if follow_ups:
        log.warning(
            "audit reconciliation: %d audited change(s) were never committed; follow-up "
            "event(s) at seq %s", len(follow_ups), ", ".join(map(str, follow_ups)),
        )
    return Reconciliation(after_seq=after, through_seq=through, follow_ups=tuple(follow_ups))
