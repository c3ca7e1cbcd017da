"""Per-call state that servicers fill in for the audit log (no identifiers, ever)."""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Call", "current_call"]


@dataclass
class Call:
    """What an RPC did, as the audit log records it."""

    method: str
    organisation: str = ""
    role: str = ""
    roles: frozenset[str] = frozenset()
    dataset: str | None = None
    project: str | None = None
    policy_fingerprint: str | None = None
    key_ids: dict[str, str] = field(default_factory=dict)
    counts: dict[str, Any] = field(default_factory=dict)
    # Names, integers and ids an auditor needs about a state change (audit/events.py, DETAIL_NAMES).
    details: dict[str, Any] = field(default_factory=dict)
    audited: bool = False
    # Set by the interceptor: writes the event now (raises Unavailable if it cannot).
    record: Callable[[str], None] = field(default=lambda status: None, repr=False)
    # Set by the interceptor: writes an event for one exchange of a stream, every time.
    record_exchange: Callable[[str], None] = field(default=lambda status: None, repr=False)

    def commit_point(self) -> None:
        """Write the audit event for success *before* committing or sending the result."""
        self.record("OK")

    def exchange_done(self) -> None:
        """Audit one request/response exchange of a long stream, then start fresh counts."""
        self.record_exchange("OK")
        self.counts = {}


_CURRENT: contextvars.ContextVar[Call] = contextvars.ContextVar("pseudogate_call")


def current_call() -> Call:
    """The call being served on this thread (a throwaway one outside the server)."""
    try:
        return _CURRENT.get()
    except LookupError:
        return Call(method="")


def set_current(call: Call) -> contextvars.Token[Call]:
    return _CURRENT.set(call)


def reset_current(token: contextvars.Token[Call]) -> None:
    _CURRENT.reset(token)
