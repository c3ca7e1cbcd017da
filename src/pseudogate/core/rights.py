"""People's rights requests: kinds, statuses, reasons and THE two-person rule (docs/rights.md).

A request (subject access, re-identification) is made by one identity (an organisation and
a role) and executes only after an identity of a *different organisation and a different
role* approves it. Nobody approves their own request; a second approval by the same
identity counts once; a refusal ends the request; a request not approved in time expires.

Pure rules only: no storage, no transport. Times are passed in (the clock is injectable).
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import re
import secrets
from dataclasses import dataclass

from pseudogate.core.errors import FailedPrecondition, InvalidInput, PermissionDenied
from pseudogate.core.identifiers import contains_identifier

__all__ = [
    "DEFAULT_EXPIRY_DAYS",
    "DEFAULT_MAX_TOKENS",
    "MAX_REASON_CHARS",
    "REQUEST_ID_RE",
    "RequestKind",
    "RequestStatus",
    "Requester",
    "RightsSettings",
    "check_approver",
    "check_pending",
    "check_reason",
    "check_request_id",
    "expires_at",
    "is_expired",
    "new_request_id",
    "reason_sha256",
]

DEFAULT_EXPIRY_DAYS = 7
DEFAULT_MAX_TOKENS = 100
MAX_REASON_CHARS = 1000
REQUEST_ID_RE = re.compile(r"[0-9a-f]{32}")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


class RequestKind(enum.StrEnum):
    SUBJECT_ACCESS = "subject_access"
    REIDENTIFY = "reidentify"


class RequestStatus(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REFUSED = "refused"
    EXECUTED = "executed"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class RightsSettings:
    """What an operator may configure: days a request waits for approval, and the most
    project tokens one re-identification request may name."""

    expiry_days: int = DEFAULT_EXPIRY_DAYS
    max_tokens: int = DEFAULT_MAX_TOKENS

    def __post_init__(self) -> None:
        if not 1 <= self.expiry_days <= 365:
            raise InvalidInput("rights request expiry must be between 1 and 365 days")
        if not 1 <= self.max_tokens <= 100_000:
            raise InvalidInput("the token limit of a re-identification must be 1 to 100000")


@dataclass(frozen=True, slots=True)
class Requester:
    """An identity as the two-person rule sees it: an organisation and the role it acted in."""

    organisation: str
    role: str


def new_request_id() -> str:
    """A random request id: 32 lowercase hex digits, never derived from the data."""
    return secrets.token_hex(16)


def check_request_id(value: object) -> str:
    """A well-formed request id, else InvalidInput (the value is not echoed)."""
    if not isinstance(value, str) or REQUEST_ID_RE.fullmatch(value) is None:
        raise InvalidInput("a request id is 32 lowercase hexadecimal digits")
    return value


def check_reason(value: object, *, field: str = "reason") -> str:
    """A stated reason: required text, at most MAX_REASON_CHARS characters, no control
    characters and no direct identifier (an NHS number, a postcode, an email...): reasons are
    shown to approvers and kept, so a person must not be named in one."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"a {field} is required (text)")
    text = value.strip()
    if len(text) > MAX_REASON_CHARS:
        raise InvalidInput(f"the {field} is longer than {MAX_REASON_CHARS} characters")
    if _CONTROL_RE.search(text):
        raise InvalidInput(f"the {field} holds control characters")
    if contains_identifier(text):
        raise InvalidInput(
            f"the {field} holds what looks like a direct identifier (an NHS number, a "
            "postcode or an email address); describe the purpose without naming the person"
        )
    return text


def reason_sha256(reason: str) -> str:
    """What the audit log records of a reason: its SHA-256 (the log holds no free text; the
    catalog keeps the text, and this hash binds it to the log)."""
    return hashlib.sha256(reason.encode("utf-8")).hexdigest()


def expires_at(created: dt.datetime, *, days: int) -> dt.datetime:
    return created + dt.timedelta(days=days)


def is_expired(expires: str, *, now: dt.datetime) -> bool:
    """Whether a request expiring at ``expires`` (RFC 3339 UTC) has expired at ``now``."""
    moment = dt.datetime.fromisoformat(expires)
    return now >= moment


def check_approver(*, requester: Requester, approver: Requester) -> None:
    """THE two-person rule: PermissionDenied unless ``approver`` is of a different
    organisation AND acts in a different role from ``requester``."""
    if approver.organisation == requester.organisation and approver.role == requester.role:
        raise PermissionDenied("nobody may approve or refuse their own request")
    if approver.organisation == requester.organisation:
        raise PermissionDenied(
            "a request must be approved by a different organisation from the requester's"
        )
    if approver.role == requester.role:
        raise PermissionDenied("a request must be approved in a different role from the requester's")


def check_pending(status: RequestStatus) -> None:
    """FailedPrecondition unless the request still waits for a decision."""
    if status is not RequestStatus.PENDING:
        raise FailedPrecondition(f"the request is {status.value}, not pending")
