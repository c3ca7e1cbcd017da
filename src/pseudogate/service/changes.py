"""The one way a servicer changes state: prepared change → audit event → commit.

Every state-changing RPC (SubmitDataset, CreateProject, ImportOptOuts, CreateExtract, and any
later one) prepares its change in the store and hands it to :func:`apply_change`. The change's
facts become the call's audit event, which is written before anything is committed; if it
cannot be written the call fails ``UNAVAILABLE`` and nothing is committed
(:mod:`pseudogate.gateway.changes` holds the rule's domain side).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from pseudogate.audit.events import AuditEvent, build_event
from pseudogate.gateway.changes import ChangeFacts, PreparedChange
from pseudogate.service.calls import Call, current_call

__all__ = ["apply_change", "apply_own_change"]

R = TypeVar("R")


def apply_change(change: PreparedChange[R]) -> R:
    """Write the call's audit event from the change's facts, then commit the change.

    Raises whatever the audit log raises (Unavailable), with the change aborted: nothing is
    committed. A failure after the event is audited again by the interceptor with its status.
    """
    call = current_call()
    if call.audited:
        change.abort()
        raise RuntimeError("this call's audit event is already written; a change needs its own")

    def record(facts: ChangeFacts) -> None:
        _fill(call, facts)
        call.commit_point()  # raises if the event cannot be written: the commit never starts

    try:
        return change.commit(record=record)
    except BaseException:
        change.abort()
        raise


def apply_own_change(
    change: PreparedChange[R], *, method: str, append: Callable[[AuditEvent], object]
) -> R:
    """The same rule for a change the gateway makes itself, with no caller (the expiry of a
    rights request found by the sweep): its event, ``method`` with ``organisation`` and
    ``role`` null and status ``OK``, is appended to the log with ``append`` before the change
    is committed. Raises what ``append`` raises (Unavailable), with nothing committed."""

    def record(facts: ChangeFacts) -> None:
        append(build_event(
            organisation=None, role=None, method=method, status="OK",
            dataset=facts.dataset, project=facts.project,
            policy_fingerprint=facts.policy_fingerprint, key_ids=facts.key_ids,
            counts=facts.counts, details=facts.event_details(),
        ))

    try:
        return change.commit(record=record)
    except BaseException:
        change.abort()
        raise


def _fill(call: Call, facts: ChangeFacts) -> None:
    if facts.dataset is not None:
        call.dataset = facts.dataset
    if facts.project is not None:
        call.project = facts.project
    if facts.policy_fingerprint is not None:
        call.policy_fingerprint = facts.policy_fingerprint
    call.key_ids.update(facts.key_ids)
    call.counts.update(facts.counts)
    call.details.update(facts.event_details())
