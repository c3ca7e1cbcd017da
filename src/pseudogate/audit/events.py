"""Audit events: the exact field set, and validation that keeps personal data out of the log.

An event records who called which RPC, on what, under which policy and keys, how much, and the
outcome. It never carries an identifier, a token or key material: every field has a fixed shape
(names match strict patterns, counts are integers), so free text a client typed cannot slip in.
The one exception is a project's public statements (its title, purpose, legal basis and public
benefit), published on the register anyway and checked for identifiers (core/statements.py).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pseudogate.core import clock, names
from pseudogate.core.errors import InvalidInput
from pseudogate.core.identifiers import direct_identifier_in
from pseudogate.core.statements import statement_text_ok

__all__ = [
    "DETAIL_NAMES",
    "EVENT_FIELDS",
    "OPTIONAL_FIELDS",
    "STATUS_NAMES",
    "AuditEvent",
    "build_event",
    "details_ok",
    "now_rfc3339",
    "prepare_event",
    "rfc3339",
    "safe_details",
    "safe_name",
    "utc_now",
    "validate_event",
]

#: The fields of an event, exactly (``hash`` is added when the event is exported).
EVENT_FIELDS: tuple[str, ...] = (
    "seq",
    "time",
    "organisation",
    "role",
    "method",
    "dataset",
    "project",
    "policy_fingerprint",
    "key_ids",
    "counts",
    "status",
)

#: Fields an event carries only when it has them (absent otherwise, so that the canonical bytes
#: and hashes of events without them are unchanged).
OPTIONAL_FIELDS: tuple[str, ...] = ("details",)

#: gRPC status code names (kept here so the core does not import grpc).
STATUS_NAMES: frozenset[str] = frozenset(
    {
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    }
)

_ORG_RE = names.ORG_RE
_ROLE_RE = names.ROLE_RE
_METHOD_RE = re.compile(r"/[A-Za-z][A-Za-z0-9_.]{0,99}/[A-Za-z][A-Za-z0-9_]{0,99}")
_DATASET_RE = names.DATASET_NAME_RE
_PROJECT_RE = names.PROJECT_ID_RE
_FINGERPRINT_RE = re.compile(r"[A-Za-z0-9:_-]{1,100}")
_KEY_ID_RE = names.KEY_ID_RE
_COUNT_NAME_RE = re.compile(r"[a-z][a-z0-9_]{0,39}")
_DOMAIN_RE = names.LEGACY_DOMAIN_RE  # wider than DOMAIN_RE: events recorded before still verify
_CHANGE_ID_RE = re.compile(r"[0-9a-f]{32}")
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_MAX_LIST = 64
TIME_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?Z")


utc_now = clock.utc_now
#: ``rfc3339(utc_now())``, fast: the audit log stamps every call (core/clock.py).
now_rfc3339 = clock.now_rfc3339_milliseconds


def rfc3339(moment: dt.datetime) -> str:
    """An audit event time: RFC 3339 UTC with milliseconds, e.g. ``2025-06-01T09:30:00.125Z``."""
    return clock.rfc3339(moment, precision="milliseconds")


def safe_name(value: str | None, *, kind: str) -> str | None:
    """``value`` if it is a well-formed dataset/project name, else None.

    A refused call may name a dataset or project that does not exist or is malformed; the log
    records only well-formed names, so whatever a client typed never reaches it verbatim. A
    well-formed name that is or contains a direct identifier (a project "943-476-5919", a
    dataset "ll112ab") is not recorded either: a client that put one in the wrong field must not
    get it into the log.
    """
    if not value:
        return None
    pattern = {"dataset": _DATASET_RE, "project": _PROJECT_RE}[kind]
    if not pattern.fullmatch(value) or direct_identifier_in(value) is not None:
        return None
    return value


#: What each ``details`` entry may hold. Only these names, and only these shapes: names must
#: match the gateway's name patterns (and are recorded as null when they do not, or when they
#: are a direct identifier), numbers are non-negative integers, ids are lowercase hex. So no
#: free text can get in through ``details`` either, but for a project's public statements.
DETAIL_NAMES: Mapping[str, str] = {
    "change": "change_id",  # the random id of a state change (32 lowercase hex digits)
    "reconciles": "integer",  # the seq of the event a follow-up event settles
    "version": "integer",  # the dataset version a submission created
    "versions": "integers",  # the dataset versions an extract was built from
    "datasets": "datasets",  # dataset names, in the project's order
    "researcher": "organisation",  # the organisation a project is for
    "domain": "domain",  # the linkage domain
    "expires": "date",  # a project's last day (YYYY-MM-DD)
    "linkage": "linkage_method",  # a project's linkage method: "exact" or "probabilistic"
    "linkage_threshold": "probability",  # a probabilistic project's match threshold, in (0, 1)
    "snapshot": "integer",  # the opt-out snapshot created or applied
    "previous_snapshot": "integer",  # the snapshot an import replaced (absent if none)
    "previous_people": "integer",  # how many people that snapshot held
    "content_sha256": "sha256",  # an extract's content hash, as in its signed manifest
    # People's rights requests (docs/rights.md): ids, kinds, statuses, never text or tokens.
    "request": "change_id",  # a rights request's random id (32 lowercase hex digits)
    "request_kind": "request_kind",  # "subject_access" or "reidentify"
    "request_status": "request_status",  # the status the step leaves it in
    "requester": "organisation",  # the organisation that made the request
    "requester_role": "role",  # the role it acted in
    "reason_sha256": "sha256",  # SHA-256 of a stated reason (the catalog keeps the text)
    "request_expires": "time",  # when a pending request expires (RFC 3339 UTC)
    # A project's public statements (core/statements.py): the one free text the log records,
    # because it is published anyway; refused at creation when it holds an identifier, and
    # recorded as null should one ever get this far.
    "title": "statement",
    "purpose": "statement",
    "legal_basis": "statement",
    "public_benefit": "statement",
}

_DETAIL_NAME_PATTERNS: dict[str, re.Pattern[str]] = {
    "organisation": _ORG_RE,
    "role": _ROLE_RE,
    "dataset": _DATASET_RE,
    "domain": _DOMAIN_RE,
}


def _safe_text(value: Any, pattern: re.Pattern[str]) -> str | None:
    if isinstance(value, str) and pattern.fullmatch(value) and direct_identifier_in(value) is None:
        return value
    return None


def safe_details(details: Mapping[str, Any]) -> dict[str, Any]:
    """``details`` with every malformed or identifying name replaced by null.

    Names in ``details`` come from requests (a researcher, a domain...), so they get the same
    treatment as dataset and project names (:func:`safe_name`). Other entries are copied as
    they are for :func:`validate_event` to judge: an unknown entry or a wrong type is a
    programming error, refused.
    """
    out: dict[str, Any] = {}
    for name, value in details.items():
        kind = DETAIL_NAMES.get(name) if isinstance(name, str) else None
        if kind in _DETAIL_NAME_PATTERNS:
            out[name] = _safe_text(value, _DETAIL_NAME_PATTERNS[kind])
        elif kind == "datasets" and isinstance(value, (list, tuple)):
            out[name] = [_safe_text(v, _DATASET_RE) for v in value]
        elif kind == "integers" and isinstance(value, tuple):
            out[name] = list(value)
        elif kind == "statement":
            out[name] = value if statement_text_ok(name, value) else None
        else:
            out[name] = value
    return out


def _detail_ok(kind: str, value: Any, name: str = "") -> bool:
    if kind in _DETAIL_NAME_PATTERNS:
        return value is None or _safe_text(value, _DETAIL_NAME_PATTERNS[kind]) is not None
    if kind == "integer":
        return _is_int(value) and value >= 0
    if kind == "statement":
        return value is None or statement_text_ok(name, value)
    if kind == "linkage_method":
        return value in ("exact", "probabilistic")
    if kind == "request_kind":
        return value in ("subject_access", "reidentify")
    if kind == "request_status":
        return value in ("pending", "approved", "refused", "executed", "expired")
    if kind == "probability":
        return (
            isinstance(value, float) and math.isfinite(value) and 0.0 < value < 1.0
        )
    if kind == "integers":
        return (
            isinstance(value, list)
            and len(value) <= _MAX_LIST
            and all(_is_int(v) and v >= 0 for v in value)
        )
    if kind == "datasets":
        return (
            isinstance(value, list)
            and len(value) <= _MAX_LIST
            and all(v is None or _safe_text(v, _DATASET_RE) is not None for v in value)
        )
    pattern = {
        "change_id": _CHANGE_ID_RE, "date": _DATE_RE, "sha256": _SHA256_RE, "time": TIME_RE,
    }[kind]
    return isinstance(value, str) and pattern.fullmatch(value) is not None


def details_ok(value: Any) -> bool:
    """Whether ``value`` is a well-formed ``details`` object (the offline verifier uses it)."""
    return (
        isinstance(value, dict)
        and bool(value)
        and all(
            isinstance(name, str) and name in DETAIL_NAMES and _detail_ok(DETAIL_NAMES[name], v, name)
            for name, v in value.items()
        )
    )


@dataclass(frozen=True, init=False)
class AuditEvent:
    """What a caller asks the log to record: who called which RPC, on what, under which policy
    and keys, how much, and the outcome. The log adds ``seq`` and ``time``.

    It is not trusted as built: :meth:`AuditLog.append` checks it in one place
    (:func:`prepare_event`: malformed names become null, anything else malformed is refused)
    and only then converts it to the canonical JSON object. ``key_ids`` is a mapping (named
    keys, as an extract's) or a sequence of ids; ``details`` is None for calls that change
    nothing, so that their canonical bytes are as they always were.
    """

    organisation: str | None
    role: str | None
    method: str
    dataset: str | None
    project: str | None
    policy_fingerprint: str | None
    key_ids: Mapping[str, str] | Sequence[str]
    counts: Mapping[str, int]
    status: str
    details: Mapping[str, Any] | None = None

    def __init__(
        self,
        organisation: str | None,
        role: str | None,
        method: str,
        dataset: str | None,
        project: str | None,
        policy_fingerprint: str | None,
        key_ids: Mapping[str, str] | Sequence[str],
        counts: Mapping[str, int],
        status: str,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        # One store instead of the ten object.__setattr__ calls of a generated frozen
        # __init__: the interceptor builds an event for every RPC (docs/performance.md).
        object.__setattr__(self, "__dict__", {
            "organisation": organisation,
            "role": role,
            "method": method,
            "dataset": dataset,
            "project": project,
            "policy_fingerprint": policy_fingerprint,
            "key_ids": key_ids,
            "counts": counts,
            "status": status,
            "details": details,
        })

    def to_json_dict(self) -> dict[str, Any]:
        """The caller's fields as JSON values in :data:`EVENT_FIELDS` order, then ``details``
        if any; every container is a fresh copy. Nothing is checked here (see
        :func:`prepare_event`): a malformed value is passed on for the validator to refuse."""
        key_ids: Any = self.key_ids
        kind = type(key_ids)  # exact types first: this runs for every RPC
        if kind is dict:
            key_ids = key_ids.copy()
        elif kind is tuple or kind is list:
            key_ids = list(key_ids)
        elif isinstance(key_ids, Mapping):
            key_ids = dict(key_ids)
        counts: Any = self.counts
        if type(counts) is dict:
            counts = counts.copy()
        elif isinstance(counts, Mapping):
            counts = dict(counts)
        out: dict[str, Any] = {
            "organisation": self.organisation,
            "role": self.role,
            "method": self.method,
            "dataset": self.dataset,
            "project": self.project,
            "policy_fingerprint": self.policy_fingerprint,
            "key_ids": key_ids,
            "counts": counts,
            "status": self.status,
        }
        details = self.details
        if details is not None:
            out["details"] = (
                {k: list(v) if isinstance(v, (list, tuple)) else v for k, v in details.items()}
                if isinstance(details, Mapping) else details
            )
        return out


def build_event(
    *,
    organisation: str | None,
    role: str | None,
    method: str,
    status: str,
    dataset: str | None = None,
    project: str | None = None,
    policy_fingerprint: str | None = None,
    key_ids: Sequence[str] | Mapping[str, str] = (),
    counts: Mapping[str, int] | None = None,
    details: Mapping[str, Any] | None = None,
) -> AuditEvent:
    """An :class:`AuditEvent` with defaults, ready for ``AuditLog.append``.

    A sequence of key ids is recorded sorted, each once; empty ``details`` are left out. The
    event is checked when appended (:func:`prepare_event`), not here: one place decides.
    """
    return AuditEvent(
        organisation=organisation,
        role=role,
        method=method,
        dataset=dataset,
        project=project,
        policy_fingerprint=policy_fingerprint,
        key_ids=dict(key_ids) if isinstance(key_ids, Mapping) else tuple(sorted(set(key_ids))),
        counts=dict(counts or {}),
        status=status,
        details=dict(details) if details else None,
    )


def _optional(pattern: re.Pattern[str]) -> Callable[[Any], bool]:
    return lambda v: v is None or (isinstance(v, str) and pattern.fullmatch(v) is not None)


def _unknown_or(pattern: re.Pattern[str]) -> Callable[[Any], bool]:
    """Organisation and role are "" (or null) when a refused caller could not be identified."""
    return lambda v: v is None or v == "" or (isinstance(v, str) and pattern.fullmatch(v) is not None)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _key_ids_ok(value: Any) -> bool:
    if isinstance(value, list):
        return all(isinstance(k, str) and _KEY_ID_RE.fullmatch(k) for k in value)
    if isinstance(value, dict):
        return all(
            isinstance(name, str)
            and _COUNT_NAME_RE.fullmatch(name)
            and isinstance(k, str)
            and _KEY_ID_RE.fullmatch(k)
            for name, k in value.items()
        )
    return False


def _counts_ok(value: Any) -> bool:
    return isinstance(value, dict) and all(
        isinstance(name, str) and _COUNT_NAME_RE.fullmatch(name) and _is_int(n) and n >= 0
        for name, n in value.items()
    )


_CHECKS: dict[str, Callable[[Any], bool]] = {
    "seq": lambda v: _is_int(v) and v >= 1,
    "time": lambda v: isinstance(v, str) and TIME_RE.fullmatch(v) is not None,
    "organisation": _unknown_or(_ORG_RE),
    "role": _unknown_or(_ROLE_RE),
    "method": lambda v: isinstance(v, str) and _METHOD_RE.fullmatch(v) is not None,
    "dataset": _optional(_DATASET_RE),
    "project": _optional(_PROJECT_RE),
    "policy_fingerprint": _optional(_FINGERPRINT_RE),
    "key_ids": _key_ids_ok,
    "counts": _counts_ok,
    "status": lambda v: v in STATUS_NAMES,
    "details": details_ok,
}


def validate_event(event: Mapping[str, Any], *, complete: bool = True) -> None:
    """Raise :class:`InvalidInput` unless ``event`` has exactly the event fields, well formed.

    ``complete=False`` checks an event before the log adds ``seq`` and ``time``. Unknown keys
    (``value``, ``token``, ``signature``, ``hash``...) are refused: nothing else is ever logged.
    ``details`` (:data:`OPTIONAL_FIELDS`) may be absent; when present it must be well formed.
    """
    expected = set(EVENT_FIELDS) if complete else set(EVENT_FIELDS) - {"seq", "time"}
    keys = set(event)
    extra = sorted(keys - expected - set(OPTIONAL_FIELDS))
    if extra:
        raise InvalidInput(f"audit event has forbidden field(s): {', '.join(extra)}")
    missing = [f for f in EVENT_FIELDS if f in expected and f not in keys]
    if missing:
        raise InvalidInput(f"audit event lacks field(s): {', '.join(missing)}")
    for name in EVENT_FIELDS:
        if name not in expected:
            continue
        value = event[name]
        memo = (name, value) if isinstance(value, str) else None
        if memo is not None and memo in _KNOWN_GOOD:
            continue  # the same organisation, method, status... recur on every call
        if not _CHECKS[name](value):
            raise InvalidInput(f"audit event field {name!r} is malformed")
        if memo is not None:
            if len(_KNOWN_GOOD) >= _KNOWN_GOOD_LIMIT:
                _KNOWN_GOOD.clear()
            _KNOWN_GOOD.add(memo)
    for name in OPTIONAL_FIELDS:
        if name in event and not _CHECKS[name](event[name]):
            raise InvalidInput(f"audit event field {name!r} is malformed")


#: (field, string value) pairs already validated: a bounded memo for the hot path.
_KNOWN_GOOD: set[tuple[str, str]] = set()
_KNOWN_GOOD_LIMIT = 4_096

#: Event shapes already validated (every field but the count values). Only shapes whose
#: dataset and project names were kept as given are memoised, so the memo never holds text
#: that the log itself would not record.
_SHAPES: set[tuple[Any, ...]] = set()


def _shape(event: AuditEvent) -> tuple[Any, ...] | None:
    """A key for everything in ``event`` but its count values (None if unusual); it is not
    hashable when a value is not (a list for a name, say), which :func:`prepare_event` handles.
    """
    if event.details is not None:
        return None
    key_ids, counts = event.key_ids, event.counts
    if type(counts) is not dict:
        return None
    if type(key_ids) is dict:
        key_id_shape: tuple[Any, ...] = ("map", *key_ids.items())
    elif type(key_ids) is tuple or type(key_ids) is list:
        key_id_shape = ("list", *key_ids)
    else:
        return None
    return (
        event.organisation,
        event.role,
        event.method,
        event.dataset,
        event.project,
        event.policy_fingerprint,
        event.status,
        key_id_shape,
        *counts,
    )


def prepare_event(event: AuditEvent) -> dict[str, Any]:
    """What the log records of a caller's event, the one place an event is checked: its fields
    in :data:`EVENT_FIELDS` order (without ``seq`` and ``time``) then ``details`` if it has
    any, malformed dataset/project names as null (:func:`safe_name`, :func:`safe_details`),
    all validated. Raises :class:`InvalidInput` as :func:`validate_event` does."""
    shape = _shape(event)
    try:
        known = shape in _SHAPES
    except TypeError:  # an unhashable value in a name field: never memoised
        shape, known = None, False
    if known:
        for n in event.counts.values():
            if type(n) is not int or n < 0:
                break
        else:
            return event.to_json_dict()
    checked = event.to_json_dict()
    for kind in ("dataset", "project"):
        if checked[kind] is None or isinstance(checked[kind], str):
            checked[kind] = safe_name(checked[kind], kind=kind)
    if isinstance(checked.get("details"), Mapping):
        checked["details"] = safe_details(checked["details"])  # lists already copied
    validate_event(checked, complete=False)
    if (
        shape is not None
        and checked["dataset"] == event.dataset
        and checked["project"] == event.project
    ):
        if len(_SHAPES) >= _KNOWN_GOOD_LIMIT:
            _SHAPES.clear()
        _SHAPES.add(shape)
    return checked
