"""The one clock and RFC 3339 formatter (core/clock.py): both contract formats, the audit fast
path proven equal to the formatter, and injection where keys are stamped."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pseudogate.audit import events
from pseudogate.core import clock
from pseudogate.core.authz import load_certificate
from pseudogate.core.keyring import Keyring, Purpose
from pseudogate.tools.certs import write_dev_certs

PLUS_ONE = dt.timezone(dt.timedelta(hours=1))
MOMENT = dt.datetime(2025, 6, 1, 10, 30, 0, 125_999, tzinfo=PLUS_ONE)


def test_when_formatted_in_seconds_then_it_is_utc_whole_seconds_with_z() -> None:
    assert clock.rfc3339(MOMENT, precision="seconds") == "2025-06-01T09:30:00Z"


def test_when_formatted_in_milliseconds_then_it_is_utc_truncated_milliseconds_with_z() -> None:
    assert clock.rfc3339(MOMENT, precision="milliseconds") == "2025-06-01T09:30:00.125Z"


def test_when_time_is_naive_then_it_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        clock.rfc3339(dt.datetime(2025, 6, 1), precision="seconds")


@given(st.datetimes(min_value=dt.datetime(1970, 1, 1), max_value=dt.datetime(9999, 12, 30),
                    timezones=st.just(dt.UTC)))
def test_when_formatted_then_both_precisions_match_the_formats_used_before(
    moment: dt.datetime,
) -> None:
    """Byte-identical to the two formatters this one replaced (catalog/manifest, audit)."""
    catalog_before = moment.replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")
    keyring_before = moment.replace(microsecond=0).isoformat().replace("+00:00", "Z")
    assert clock.rfc3339(moment, precision="seconds") == catalog_before == keyring_before
    audit_before = moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    assert clock.rfc3339(moment, precision="milliseconds") == audit_before
    assert events.rfc3339(moment) == audit_before


@given(st.integers(min_value=0, max_value=253_402_300_799_999_999_999))
def test_when_now_is_stamped_fast_then_it_equals_the_formatter_on_the_same_instant(ns: int) -> None:
    moment = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=ns // 1000)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(time, "time_ns", lambda: ns)
        fast = clock.now_rfc3339_milliseconds()
    assert fast == clock.rfc3339(moment, precision="milliseconds")


def test_when_now_is_stamped_fast_then_it_equals_the_formatter_of_utc_now() -> None:
    """On the real clock: the two readings straddle the fast one (same millisecond or next)."""
    before = clock.rfc3339(clock.utc_now(), precision="milliseconds")
    fast = clock.now_rfc3339_milliseconds()
    after = clock.rfc3339(clock.utc_now(), precision="milliseconds")
    assert before <= fast <= after
    assert events.now_rfc3339 is clock.now_rfc3339_milliseconds
    assert events.utc_now is clock.utc_now  # so the audit log takes the fast path by default


def test_when_today_is_asked_then_it_is_the_utc_date_of_the_clock() -> None:
    late = dt.datetime(2025, 6, 1, 0, 30, tzinfo=PLUS_ONE)  # still 31 May in UTC
    assert clock.today_utc(lambda: late) == dt.date(2025, 5, 31)


def test_when_keys_are_generated_and_rotated_then_created_comes_from_the_clock() -> None:
    ring = Keyring.generate(clock=lambda: MOMENT)
    assert {i.created for i in ring.infos()} == {"2025-06-01T09:30:00Z"}
    later = MOMENT + dt.timedelta(days=1, microseconds=1)
    assert ring.add(Purpose.LINKAGE, clock=lambda: later).created == "2025-06-02T09:30:00Z"


def test_when_dev_certs_are_made_then_validity_starts_at_the_clock(tmp_path: Path) -> None:
    write_dev_certs(tmp_path, [("uni", "researcher")], clock=lambda: MOMENT)
    cert = load_certificate((tmp_path / "uni.pem").read_bytes())
    assert cert.not_valid_before_utc == dt.datetime(2025, 6, 1, 9, 30, tzinfo=dt.UTC)
