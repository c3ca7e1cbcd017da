"""The two-person rule, reasons and expiry of people's rights requests (core/rights.py)."""

from __future__ import annotations

import datetime as dt

import pytest

from pseudogate.core.errors import FailedPrecondition, InvalidInput, PermissionDenied
from pseudogate.core.rights import (
    Requester,
    RequestStatus,
    RightsSettings,
    check_approver,
    check_pending,
    check_reason,
    check_request_id,
    expires_at,
    is_expired,
    new_request_id,
    reason_sha256,
)

ADMIN_OPS = Requester("ops", "admin")


@pytest.mark.parametrize(
    ("approver", "why"),
    [
        (Requester("ops", "admin"), "own request"),
        (Requester("ops", "auditor"), "different organisation"),
        (Requester("audit-office", "admin"), "different role"),
    ],
)
def test_when_the_approver_shares_the_organisation_or_the_role_then_it_is_refused(
    approver: Requester, why: str
) -> None:
    with pytest.raises(PermissionDenied, match=why):
        check_approver(requester=ADMIN_OPS, approver=approver)


def test_when_the_approver_differs_in_organisation_and_role_then_it_may_approve() -> None:
    check_approver(requester=ADMIN_OPS, approver=Requester("audit-office", "auditor"))


@pytest.mark.parametrize(
    "reason",
    ["", "   ", "patient 943 476 5919 asked", "lives at LL11 2AB", "wrote from a@b.org",
     "x" * 1001, "tab\x00null"],
)
def test_when_a_reason_is_empty_too_long_or_names_a_person_then_it_is_refused(reason: str) -> None:
    with pytest.raises(InvalidInput) as info:
        check_reason(reason)
    assert "943" not in str(info.value) and "LL11" not in str(info.value)


def test_when_a_reason_is_plain_text_then_it_is_kept_trimmed_and_hashed() -> None:
    assert check_reason("  Art. 15 letter of 2 March  ") == "Art. 15 letter of 2 March"
    assert len(reason_sha256("x")) == 64


def test_when_the_expiry_time_is_reached_then_the_request_is_expired() -> None:
    start = dt.datetime(2026, 3, 2, 9, tzinfo=dt.UTC)
    end = expires_at(start, days=7).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert not is_expired(end, now=start + dt.timedelta(days=6, hours=23))
    assert is_expired(end, now=start + dt.timedelta(days=7))


def test_when_ids_settings_and_statuses_are_checked_then_misuse_fails_loudly() -> None:
    assert check_request_id(new_request_id())
    with pytest.raises(InvalidInput):
        check_request_id("9434765919")
    with pytest.raises(InvalidInput):
        RightsSettings(expiry_days=0)
    with pytest.raises(InvalidInput):
        RightsSettings(max_tokens=0)
    check_pending(RequestStatus.PENDING)
    for status in set(RequestStatus) - {RequestStatus.PENDING}:
        with pytest.raises(FailedPrecondition):
            check_pending(status)
