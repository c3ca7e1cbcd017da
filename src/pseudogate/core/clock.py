"""The one clock and the one RFC 3339 formatter.

Everything that stamps a time (keyring entries, catalog versions and projects, extract
manifests, audit events, development certificates) takes a keyword-only ``clock=``: a callable
returning an aware UTC datetime. Tests inject a fixed one; the gateway wires one from its
settings. Two precisions are contracts: catalog, manifest and keyring times are whole seconds
(``2025-06-01T09:30:00Z``), audit event times carry milliseconds (``2025-06-01T09:30:00.125Z``).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Literal, TypeAlias

__all__ = ["Clock", "Precision", "now_rfc3339_milliseconds", "rfc3339", "today_utc", "utc_now"]

#: A source of the current time: returns a timezone-aware datetime.
Clock: TypeAlias = Callable[[], dt.datetime]
Precision: TypeAlias = Literal["seconds", "milliseconds"]


def utc_now() -> dt.datetime:
    """The real clock (the default wherever a ``clock=`` is accepted)."""
    return dt.datetime.now(dt.UTC)


def rfc3339(moment: dt.datetime, *, precision: Precision) -> str:
    """``moment`` in UTC as RFC 3339 with a ``Z``: ``2025-06-01T09:30:00Z`` (seconds, truncated)
    or ``2025-06-01T09:30:00.125Z`` (milliseconds, truncated). Naive datetimes are refused:
    a local time mistaken for UTC would be silently wrong by hours."""
    if moment.tzinfo is None:
        raise ValueError("the clock must return timezone-aware datetimes")
    u = moment.astimezone(dt.UTC)
    stamp = f"{u.year:04d}-{u.month:02d}-{u.day:02d}T{u.hour:02d}:{u.minute:02d}:{u.second:02d}"
    if precision == "seconds":
        return f"{stamp}Z"
    if precision == "milliseconds":
        return f"{stamp}.{u.microsecond // 1000:03d}Z"
    raise ValueError(f"unknown precision {precision!r}")


def today_utc(clock: Clock = utc_now) -> dt.date:
    """The UTC date now by ``clock`` (expiry dates are UTC days)."""
    return clock().astimezone(dt.UTC).date()


_second_prefix: tuple[int, str] = (-1, "")


def now_rfc3339_milliseconds() -> str:
    """``rfc3339(utc_now(), precision="milliseconds")`` without building a datetime: the audit
    log stamps every call, so the real clock has this fast path (a test proves them equal)."""
    global _second_prefix
    milliseconds = time.time_ns() // 1_000_000
    second, millisecond = divmod(milliseconds, 1000)
    cached_second, prefix = _second_prefix
    if second != cached_second:
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _second_prefix = (second, prefix)
    return f"{prefix}.{millisecond:03d}Z"
