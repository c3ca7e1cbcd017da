"""The invariant a data directory must satisfy after any fault, checked with the gateway stopped.

(a) every catalog version row names a Parquet file that exists, is readable and holds the
    recorded number of rows;
(b) no file under ``datasets/`` that the catalog does not name (``quarantine/`` is where start-up
    may move such files, so anything there is allowed), and no staging file outside ``tmp/``;
(c) the audit log verifies with the project's own verifier (``verify_database``) and, after a
    graceful stop, every event is covered by a signed checkpoint;
(d) catalog and audit log agree: every committed version, project and opt-out snapshot has an
    ``OK`` event of the matching method. The converse (every ``OK`` state-changing event is
    committed, or a later event reconciles it as not committed) needs events that carry a
    ``details`` object with a change id; it is checked only when the log holds such events, and
    the report says whether it was;
(e) no raw identifier of the test data appears in any byte under the data directory (every
    file: SQLite databases, their WAL and journal files, Parquet, staging files).

Problems name files, catalog rows, event seqs and kinds of identifier, never an identifier.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from pseudogate.audit import AUDIT_DB_NAME, verify_database
from pseudogate.core.errors import VerificationFailed
from pseudogate.gateway.store import LOCK_FILE
from pseudogate.store.catalog import Catalog

__all__ = [
    "STATE_CHANGES",
    "CatalogState",
    "InvariantReport",
    "RawIdentifiers",
    "audit_agreement",
    "check_invariant",
    "find_raw_identifiers",
    "method_name",
    "raw_identifier_problems",
    "read_catalog",
    "read_events",
]

SUBMIT, PROJECT, OPTOUTS = "SubmitDataset", "CreateProject", "ImportOptOuts"
#: The RPCs that change the catalog, by method name (the last part of the gRPC path).
STATE_CHANGES = (SUBMIT, PROJECT, OPTOUTS)

_SQLITE_SUFFIXES = ("", "-wal", "-shm", "-journal")
#: Files the data directory may hold at its top level.
TOP_LEVEL_FILES = frozenset(
    {LOCK_FILE}
    | {Catalog.FILE_NAME + s for s in _SQLITE_SUFFIXES}
    | {AUDIT_DB_NAME + s for s in _SQLITE_SUFFIXES}
)
DATASETS, STAGING, QUARANTINE = "datasets", "tmp", "quarantine"


# -- reading a stopped data directory ---------------------------------------------------------


@dataclass(frozen=True)
class CatalogState:
    """What the catalog says is committed."""

    versions: Mapping[tuple[str, int], tuple[str, int]]  # (dataset, version) -> (file, rows)
    projects: frozenset[str]
    snapshots: Mapping[int, int]  # snapshot id -> people


def _read_only(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


def read_catalog(data_dir: Path) -> CatalogState:
    db = _read_only(data_dir / Catalog.FILE_NAME)
    try:
        versions = {
            (d, int(v)): (f, int(r))
            for d, v, f, r in db.execute("SELECT dataset, version, file, rows FROM versions")
        }
        projects = frozenset(r[0] for r in db.execute("SELECT id FROM projects"))
        snapshots = {
            int(i): int(c) for i, c in db.execute("SELECT id, count FROM optout_snapshots")
        }
    finally:
        db.close()
    return CatalogState(versions, projects, snapshots)


def read_events(data_dir: Path) -> list[dict[str, Any]]:
    db = _read_only(data_dir / AUDIT_DB_NAME)
    try:
        return [json.loads(body) for (body,) in db.execute("SELECT body FROM events ORDER BY seq")]
    finally:
        db.close()


def method_name(event: Mapping[str, Any]) -> str:
    return str(event.get("method") or "").rsplit("/", 1)[-1]


# -- raw identifiers --------------------------------------------------------------------------


@dataclass(frozen=True)
class RawIdentifiers:
    """The direct identifiers of the test data. NHS numbers are found in any spelling (spaces,
    dashes), emails in any case, postcodes with or without their space; names as given."""

    nhs_numbers: frozenset[str]
    emails: frozenset[str] = frozenset()
    postcodes: frozenset[str] = frozenset()
    names: frozenset[str] = frozenset()


_NHS_RE = re.compile(rb"(?=([0-9]{3}[ -]?[0-9]{3}[ -]?[0-9]{4}))")
_EMAIL_DOMAIN_RE = re.compile(rb"@[A-Za-z0-9.-]+\.[A-Za-z]+")
_POSTCODE_RE = re.compile(rb"(?=([A-Za-z]{1,2}[0-9][A-Za-z0-9]? ?[0-9][A-Za-z]{2}))")


def find_raw_identifiers(data: bytes, ids: RawIdentifiers) -> list[str]:
    """Which kinds of identifier occur in ``data`` and how often (no values)."""
    nhs = {n.encode() for n in ids.nhs_numbers}
    postcodes = {p.replace(" ", "").upper().encode() for p in ids.postcodes}
    found: dict[str, int] = {}

    def count(kind: str, hits: int) -> None:
        if hits:
            found[kind] = found.get(kind, 0) + hits

    count("NHS number", sum(re.sub(rb"[ -]", b"", m) in nhs for m in _NHS_RE.findall(data)))
    count("email", _count_emails(data, ids.emails))
    count(
        "postcode",
        sum(m.replace(b" ", b"").upper() in postcodes for m in _POSTCODE_RE.findall(data)),
    )
    count("name", sum(data.count(n.encode()) for n in ids.names))
    return [f"{hits} {kind}(s)" for kind, hits in sorted(found.items())]


def _count_emails(data: bytes, emails: Iterable[str]) -> int:
    """Known emails in any case: at each ``@domain``, the bytes before it of each known local
    part's length (local parts may hold any UTF-8, so a pattern cannot find where they start)."""
    local_parts: dict[str, set[str]] = {}
    for email in emails:
        local, _, domain = email.lower().rpartition("@")
        local_parts.setdefault("@" + domain, set()).add(local)
    lengths = {len(local.encode()) for parts in local_parts.values() for local in parts}
    hits = 0
    for match in _EMAIL_DOMAIN_RE.finditer(data):
        known = local_parts.get(match.group().decode("ascii").lower())
        if known:
            start = match.start()
            before = (data[max(start - n, 0) : start].decode("utf-8", "replace") for n in lengths)
            hits += any(b.lower() in known for b in before)
    return hits


# -- catalog <-> audit log ----------------------------------------------------------------------


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _claim(event: Mapping[str, Any], name: str) -> int | None:
    """A number the event records about its change, in ``details`` or in ``counts``."""
    for part in ("details", "counts"):
        holder = event.get(part)
        if isinstance(holder, Mapping) and _int(holder.get(name)) is not None:
            return _int(holder[name])
    return None


def _pair(
    items: Sequence[tuple[Any, int | None]],
    events: Sequence[Mapping[str, Any]],
    *,
    key_of: Callable[[Mapping[str, Any]], Any],
    size_of: Callable[[Mapping[str, Any]], int | None],
) -> tuple[list[Any], list[Mapping[str, Any]]]:
    """Pair committed items (key, size) with OK events, one to one.

    An event that names its item's key pairs with that item only; events that do not (the key,
    such as a version number, is assigned after the event was written) pair in order with the
    items left, when their recorded size agrees. Returns (unpaired item keys, unpaired events).
    """
    left = dict(items)
    unpaired: list[Mapping[str, Any]] = []
    anonymous: list[Mapping[str, Any]] = []
    for event in events:
        key = key_of(event)
        if key is None:
            anonymous.append(event)
        elif key in left and size_of(event) in (None, left[key]):
            del left[key]
        else:
            unpaired.append(event)
    for event in anonymous:
        size = size_of(event)
        match = next((k for k, s in left.items() if size is None or size == s), None)
        if match is None:
            unpaired.append(event)
        else:
            del left[match]
    return list(left), unpaired


def _is_follow_up(event: Mapping[str, Any]) -> bool:
    """A reconciliation event settles an earlier one; it is not a change of its own."""
    details = event.get("details")
    return isinstance(details, Mapping) and "reconciles" in details


def _reconciled(event: Mapping[str, Any], later: Iterable[Mapping[str, Any]]) -> bool:
    """Whether a later event says ``event``'s change did not commit: it names the event's seq
    (``details.reconciles``) or, with another status than OK, the event's change id."""
    details = event.get("details") if isinstance(event.get("details"), Mapping) else {}
    change = details.get("change")
    for other in later:
        d = other.get("details")
        if not isinstance(d, Mapping):
            continue
        if d.get("reconciles") == event.get("seq"):
            return True
        if change is not None and d.get("change") == change and other.get("status") != "OK":
            return True
    return False


def audit_agreement(
    state: CatalogState,
    events: Sequence[Mapping[str, Any]],
    *,
    reconciliation: bool,
    uncommitted_out: list[Mapping[str, Any]] | None = None,
) -> list[str]:
    """Problems in (d): commits without an OK event; with ``reconciliation``, also OK events of
    state changes that neither committed nor were reconciled by a later event. The OK events
    without a commit are appended to ``uncommitted_out``, if given."""
    ok = [e for e in events if e.get("status") == "OK" and not _is_follow_up(e)]
    problems: list[str] = []
    uncommitted: list[Mapping[str, Any]] = []

    by_dataset: dict[str, list[tuple[int, int]]] = {}
    for (dataset, version), (_, rows) in sorted(state.versions.items()):
        by_dataset.setdefault(dataset, []).append((version, rows))
    submits = [e for e in ok if method_name(e) == SUBMIT]
    for dataset in sorted(set(by_dataset) | {str(e.get("dataset")) for e in submits}):
        missing, extra = _pair(
            by_dataset.get(dataset, []),
            [e for e in submits if e.get("dataset") == dataset],
            key_of=lambda e: _claim(e, "version"),
            size_of=lambda e: _claim(e, "rows"),
        )
        problems += [
            f"catalog: dataset {dataset!r} version {v} is committed but no OK {SUBMIT} event "
            "records it"
            for v in missing
        ]
        uncommitted += extra

    missing, extra = _pair(
        [(p, None) for p in sorted(state.projects)],
        [e for e in ok if method_name(e) == PROJECT],
        key_of=lambda e: e.get("project"),
        size_of=lambda e: None,
    )
    problems += [
        f"catalog: project {p!r} is committed but no OK {PROJECT} event records it" for p in missing
    ]
    uncommitted += extra

    missing, extra = _pair(
        sorted(state.snapshots.items()),
        [e for e in ok if method_name(e) == OPTOUTS],
        key_of=lambda e: _claim(e, "snapshot"),
        size_of=lambda e: _claim(e, "people"),
    )
    problems += [
        f"catalog: opt-out snapshot {s} is committed but no OK {OPTOUTS} event records it"
        for s in missing
    ]
    uncommitted += extra

    if uncommitted_out is not None:
        uncommitted_out += uncommitted
    if reconciliation:
        for event in sorted(uncommitted, key=lambda e: e.get("seq", 0)):
            later = [e for e in events if e.get("seq", 0) > event.get("seq", 0)]
            if not _reconciled(event, later):
                problems.append(
                    f"audit: event {event.get('seq')} (OK {method_name(event)}, dataset "
                    f"{event.get('dataset')!r}, project {event.get('project')!r}) has no commit "
                    "in the catalog and no later event reconciles it"
                )
    return problems


# -- the whole invariant ------------------------------------------------------------------------


@dataclass
class InvariantReport:
    data_dir: Path
    checked: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"invariant of {self.data_dir}:"]
        lines += [f"  checked: {c}" for c in self.checked]
        lines += [f"  NOT checked: {s}" for s in self.skipped]
        lines += [f"  PROBLEM: {p}" for p in self.problems] or ["  no problems"]
        return "\n".join(lines)


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def check_invariant(
    data_dir: Path,
    *,
    public_keys: Sequence[Ed25519PublicKey],
    raw_identifiers: RawIdentifiers,
    reconciliation: bool | None = None,
    stopped_gracefully: bool = True,
) -> InvariantReport:
    """Check (a)-(e) on a stopped gateway's data directory.

    ``reconciliation`` None: check the converse of (d) when the log's events carry ``details``.
    """
    report = InvariantReport(data_dir)
    state = read_catalog(data_dir)
    files = _files(data_dir)

    # (a)
    for (dataset, version), (name, rows) in sorted(state.versions.items()):
        path = data_dir / name
        where = f"(a) {dataset} v{version} ({name})"
        if not path.is_file():
            report.problems.append(f"{where}: the file does not exist")
            continue
        try:
            found = pq.read_table(path).num_rows
        except Exception as exc:  # noqa: BLE001 - any failure to read is the problem
            report.problems.append(f"{where}: unreadable ({type(exc).__name__})")
            continue
        if found != rows:
            report.problems.append(f"{where}: holds {found} rows, the catalog says {rows}")
    report.checked.append(f"(a) {len(state.versions)} version file(s) exist, read, row counts")

    # (b)
    named = {(data_dir / name).resolve() for name, _ in state.versions.values()}
    staged = 0
    for path in files:
        relative = path.relative_to(data_dir)
        top = relative.parts[0]
        if len(relative.parts) == 1:
            if top not in TOP_LEVEL_FILES:
                report.problems.append(f"(b) unexpected file {relative} in the data directory")
        elif top == DATASETS:
            if path.resolve() not in named:
                report.problems.append(f"(b) {relative} is not named by the catalog")
        elif top == STAGING:
            staged += 1
        elif top != QUARANTINE:
            report.problems.append(f"(b) unexpected file {relative}")
    report.checked.append(
        f"(b) no unnamed file under {DATASETS}/, no staging file outside {STAGING}/ "
        f"({staged} staging file(s) in {STAGING}/)"
    )

    # (c)
    try:
        verified = verify_database(data_dir / AUDIT_DB_NAME, list(public_keys))
    except VerificationFailed as exc:
        report.problems.append(f"(c) the audit log does not verify: {exc}")
    else:
        if stopped_gracefully and verified.unsigned_events:
            report.problems.append(
                f"(c) {verified.unsigned_events} event(s) after the last checkpoint although the "
                "gateway stopped gracefully"
            )
        report.checked.append(
            f"(c) audit log verifies: {verified.events} events, {verified.checkpoints} "
            f"checkpoints, {verified.unsigned_events} unsigned"
        )

    # (d)
    events = read_events(data_dir)
    if reconciliation is None:
        reconciliation = any("details" in e for e in events)
    uncommitted: list[Mapping[str, Any]] = []
    agreement = audit_agreement(
        state, events, reconciliation=reconciliation, uncommitted_out=uncommitted
    )
    report.problems += [f"(d) {p}" for p in agreement]
    report.checked.append(
        f"(d) every committed version ({len(state.versions)}), project ({len(state.projects)}) "
        f"and opt-out snapshot ({len(state.snapshots)}) has an OK event"
    )
    converse = "(d) every OK state-changing event is committed or reconciled by a later event"
    if reconciliation:
        report.checked.append(converse)
    else:
        seqs = ", ".join(str(e.get("seq")) for e in uncommitted) or "none"
        report.skipped.append(
            f"{converse}: the log's events carry no 'details' (no change ids, no reconciliation "
            f"events on this gateway); OK state-changing events without a commit: {seqs}"
        )

    # (e)
    report.problems += raw_identifier_problems(data_dir, raw_identifiers)
    report.checked.append(f"(e) no raw identifier in any byte of {len(files)} file(s)")
    return report


def raw_identifier_problems(data_dir: Path, raw_identifiers: RawIdentifiers) -> list[str]:
    """(e) alone: it also holds for a data directory that a killed gateway just left."""
    problems = []
    for path in _files(data_dir):
        found = find_raw_identifiers(path.read_bytes(), raw_identifiers)
        if found:
            problems.append(
                f"(e) {path.relative_to(data_dir)} holds raw identifiers of the test data: "
                + ", ".join(found)
            )
    return problems
