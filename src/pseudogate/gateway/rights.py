"""People's rights: subject access and re-identification, each only with two approvals.

Every step is a state change under THE rule (:mod:`.changes`): a request, an approval, a
refusal, an expiry and each delivery of a result is *prepared* here, then committed through
:func:`commit_in_catalog` after its audit event. Results are never stored: a subject access
report and a provider's re-identified records are computed when fetched, from the catalog
and the dataset versions, and returned once (docs/rights.md).

What is kept: the request (kind, reason, requester, status, times), for subject access the
person's linkage token under each linkage key in use (never the NHS number), for
re-identification the project tokens the researcher sent. The audit log records ids,
statuses, counts and the SHA-256 of each reason, never the text or a token.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import pyarrow as pa
import pyarrow.compute as pc

from pseudogate.core.clock import Clock, rfc3339
from pseudogate.core.columns import as_text
from pseudogate.core.errors import (
    FailedPrecondition,
    InvalidInput,
    NotFound,
    PermissionDenied,
    shown,
)
from pseudogate.core.keyring import Keyring, KeyStatus, Purpose
from pseudogate.core.manifest import Manifest
from pseudogate.core.names import DEFAULT_DOMAIN, check_project_id
from pseudogate.core.normalise import InvalidValue, Kind, normalise
from pseudogate.core.rights import (
    Requester,
    RequestKind,
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
from pseudogate.gateway.changes import ChangeFacts, Recorder, commit_in_catalog, new_change_id
from pseudogate.gateway.clusters import representative_links
from pseudogate.gateway.join import join_layout
from pseudogate.store.catalog import Catalog, VersionRecord
from pseudogate.store.datasets import DatasetFiles
from pseudogate.store.requests import RequestRow, RequestTables

__all__ = [
    "PreparedRightsChange",
    "ReidentifiedRecord",
    "RequestView",
    "Rights",
]

R = TypeVar("R")

#: One message for an unknown request and one the caller may not read, so that request ids
#: cannot be probed.
_NOT_YOURS = "request {} does not exist or is not for you"
#: One message whatever is wrong with the tokens: nothing is said about which exist.
_TOKENS_REFUSED = (
    "the tokens must all be project tokens of this project's released extracts; the request "
    "was refused as a whole (nothing is said about which tokens)"
)
_PROJECT_DENIED = "project {} does not exist or is not yours"
#: The roles that may approve or refuse (the role table) and so read any request.
_DECIDING_ROLES = frozenset({"auditor", "admin"})


@dataclass(frozen=True, slots=True)
class RequestView:
    """A request as callers see it: no token, ever. ``status`` is the effective one (a
    pending request past its expiry shows ``expired`` even before the expiry is recorded)."""

    row: RequestRow
    status: RequestStatus
    approvals: int

    @property
    def tokens(self) -> int:
        return len(self.row.project_tokens)


@dataclass(frozen=True, slots=True)
class _Released:
    """A released extract as subject access sees it: what it was built from."""

    project: str
    created_at: str
    datasets: tuple[tuple[str, int], ...]  # (dataset, version), the first drives the join
    snapshot: int | None
    source: str  # "manifest" (kept in the catalog) or "audit_log" (its extract event)


@dataclass(frozen=True, slots=True)
class ReidentifiedRecord:
    """One record a provider submitted itself: where it is, and its stored linkage token."""

    dataset: str
    version: int
    row: int  # 1-based
    linkage_token: str


@dataclass
class PreparedRightsChange(Generic[R]):
    """A rights step checked and computed, waiting for its audit event and its commit."""

    catalog: Catalog
    kind: str
    committed_at: str
    facts: Callable[[str, sqlite3.Connection], ChangeFacts]
    write: Callable[[sqlite3.Connection], R]
    change_id: str = field(default_factory=new_change_id)

    def commit(self, *, record: Recorder) -> R:
        return commit_in_catalog(
            self.catalog,
            change_id=self.change_id,
            kind=self.kind,
            committed_at=self.committed_at,
            plan=lambda db: self.facts(self.change_id, db),
            write=self.write,
            record=record,
        )

    def abort(self) -> None:
        """Nothing to undo: nothing is stored until committed."""


class Rights:
    """The rights use cases over one store's catalog, files and keyring."""

    def __init__(
        self,
        *,
        catalog: Catalog,
        files: DatasetFiles,
        keyring: Keyring,
        clock: Clock,
        settings: RightsSettings | None = None,
    ) -> None:
        self.catalog = catalog
        self.files = files
        self.keyring = keyring
        self.settings = settings or RightsSettings()
        self._clock = clock
        self.tables = RequestTables(catalog)
        #: The audit log's extract events (set by the gateway once its log is open).
        self.extract_events: Callable[[], Iterable[Mapping[str, Any]]] = tuple

    # -- time -----------------------------------------------------------------------------------

    def _now(self) -> dt.datetime:
        return self._clock()

    def _stamp(self, moment: dt.datetime | None = None) -> str:
        return rfc3339(moment or self._now(), precision="seconds")

    # -- reading --------------------------------------------------------------------------------

    def _row(self, request_id: object) -> RequestRow:
        rid = check_request_id(request_id)
        row = self.tables.get(rid)
        if row is None:
            raise NotFound("no request with that id")
        return row

    def _status(self, row: RequestRow) -> RequestStatus:
        status = RequestStatus(row.status)
        if status is RequestStatus.PENDING and is_expired(row.expires_at, now=self._now()):
            return RequestStatus.EXPIRED
        return status

    def view(self, request_id: object) -> RequestView:
        row = self._row(request_id)
        return RequestView(row, self._status(row), len(self.tables.approvals(row.id)))

    def view_for(self, request_id: object, *, caller: Requester) -> RequestView:
        """A request as ``caller`` may see it: auditors and admins (who may decide on it) see
        every request; anyone else only their own (else the same refusal as an unknown id)."""
        try:
            view = self.view(request_id)
        except NotFound:
            raise PermissionDenied(_NOT_YOURS.format(shown(request_id))) from None
        own = (caller.organisation, caller.role) == (view.row.organisation, view.row.role)
        if not own and caller.role not in _DECIDING_ROLES:
            raise PermissionDenied(_NOT_YOURS.format(shown(request_id)))
        return view

    def list_for(self, *, caller: Requester, status: str = "") -> list[RequestView]:
        """Requests ``caller`` may see (as :meth:`view_for`), newest first; only those whose
        effective status is ``status`` when given."""
        try:
            wanted = RequestStatus(status) if status else None
        except ValueError:
            raise InvalidInput(
                f"status must be one of {', '.join(s.value for s in RequestStatus)}"
            ) from None
        if caller.role in _DECIDING_ROLES:
            ids = self.tables.ids()
        else:
            ids = self.tables.ids(organisation=caller.organisation, role=caller.role)
        views = [self.view(i) for i in ids]
        return [v for v in views if wanted is None or v.status is wanted]

    def _view_in(self, db: sqlite3.Connection, request_id: str) -> RequestView:
        row = self.tables.get(request_id, db)
        assert row is not None
        return RequestView(row, self._status(row), len(self.tables.approvals(request_id, db)))

    # -- creating requests ----------------------------------------------------------------------

    def _creation(self, row: RequestRow, counts: dict[str, int]) -> PreparedRightsChange[RequestView]:
        def facts(change_id: str, db: sqlite3.Connection) -> ChangeFacts:
            return ChangeFacts(
                change_id=change_id,
                project=row.project,
                counts=counts,
                details=_details(row, RequestStatus.PENDING),
            )

        def write(db: sqlite3.Connection) -> RequestView:
            self.tables.insert(db, row)
            return RequestView(row, RequestStatus.PENDING, 0)

        return PreparedRightsChange(
            self.catalog, kind="rights_request", committed_at=row.created_at,
            facts=facts, write=write,
        )

    def _new_row(self, *, kind: RequestKind, reason: object, requester: Requester,
                 **fields: Any) -> RequestRow:
        now = self._now()
        return RequestRow(
            id=new_request_id(),
            kind=kind.value,
            reason=check_reason(reason),
            organisation=requester.organisation,
            role=requester.role,
            status=RequestStatus.PENDING.value,
            created_at=self._stamp(now),
            expires_at=self._stamp(expires_at(now, days=self.settings.expiry_days)),
            **fields,
        )

    def prepare_subject_access(
        self, *, nhs_number: object, reason: object, requester: Requester,
        domain: str = DEFAULT_DOMAIN,
    ) -> PreparedRightsChange[RequestView]:
        """A subject access request: the number is tokenised at once under every linkage key
        the catalog uses, and only those tokens are kept."""
        if not isinstance(nhs_number, str):
            raise InvalidInput("nhs_number must be text")
        try:
            value = normalise(Kind.NHS_NUMBER, nhs_number)
        except InvalidValue as exc:
            raise InvalidInput(f"nhs_number is not a valid NHS number ({exc.reason})") from None
        tokens = {
            key_id: self.keyring.linkage_tokeniser(domain, key_id=key_id).token(value)
            for key_id in self._linkage_key_ids()
        }
        row = self._new_row(
            kind=RequestKind.SUBJECT_ACCESS, reason=reason, requester=requester,
            project=None, subject_tokens=tokens, project_tokens=(), domain=domain,
        )
        return self._creation(row, {"linkage_keys": len(tokens)})

    def _linkage_key_ids(self) -> list[str]:
        """The usable linkage keys: the primary and every one a version or snapshot names."""
        named = set(self.catalog.referenced_key_ids())
        usable = {
            info.id for info in self.keyring.infos()
            if info.purpose is Purpose.LINKAGE and info.status is not KeyStatus.DISABLED
        }
        return sorted((named & usable) | {self.keyring.primary(Purpose.LINKAGE).id})

    def prepare_reidentification(
        self, *, project: object, tokens: Sequence[object], reason: object, requester: Requester,
    ) -> PreparedRightsChange[RequestView]:
        """A re-identification request by the project's researcher (its organisation), with
        project tokens of its released extracts: all of them, or the request is refused with
        one message that says nothing about which."""
        project_id = _checked_project(project)
        row_p = self.catalog.project(project_id)
        if row_p is None or row_p.researcher != requester.organisation:
            raise PermissionDenied(_PROJECT_DENIED.format(shown(project_id)))
        self._check_project_live(project_id)
        wanted = _checked_tokens(tokens, limit=self.settings.max_tokens)
        found = self._locate(project_id, row_p.domain, set(wanted))
        if {t for t, _ in found} != set(wanted):
            raise FailedPrecondition(_TOKENS_REFUSED)
        row = self._new_row(
            kind=RequestKind.REIDENTIFY, reason=reason, requester=requester,
            project=project_id, subject_tokens={}, project_tokens=tuple(wanted),
            domain=row_p.domain,
        )
        return self._creation(row, {"tokens": len(wanted)})

    def _check_project_live(self, project_id: str | None) -> None:
        """FailedPrecondition if the project has expired (today, UTC, is after its last day):
        checked when a re-identification is requested, approved and fetched."""
        if project_id is None:
            return
        row_p = self.catalog.project(project_id)
        if row_p is None:
            raise FailedPrecondition(f"project {project_id!r} no longer exists")
        if self._now().date() > dt.date.fromisoformat(row_p.expires):
            raise FailedPrecondition(f"project {project_id!r} expired on {row_p.expires}")

    # -- deciding -------------------------------------------------------------------------------

    def prepare_expiry(self, request_id: object) -> PreparedRightsChange[RequestView] | None:
        """The expiry of a pending request past its time, to record; None if not due (or no
        such request: the caller's own checks say so)."""
        row = self.tables.get(check_request_id(request_id))
        if row is None or row.status != RequestStatus.PENDING.value or not is_expired(row.expires_at, now=self._now()):
            return None
        now = self._stamp()

        def facts(change_id: str, db: sqlite3.Connection) -> ChangeFacts:
            current = self.tables.get(row.id, db)
            if current is None or current.status != RequestStatus.PENDING.value:
                # recorded meanwhile (the sweep and a call found it together): nothing to do
                raise FailedPrecondition("the request expired before it was approved")
            return ChangeFacts(
                change_id=change_id, project=row.project,
                details=_details(row, RequestStatus.EXPIRED),
            )

        def write(db: sqlite3.Connection) -> RequestView:
            self.tables.set_status(db, row.id, status=RequestStatus.EXPIRED.value, decided_at=now)
            return self._view_in(db, row.id)

        return PreparedRightsChange(
            self.catalog, kind="rights_expiry", committed_at=now, facts=facts, write=write
        )

    def due_expiries(self) -> list[str]:
        """The ids of pending requests past their expiry, whose expiry is not yet recorded
        (the sweep records each with :meth:`prepare_expiry`), oldest first."""
        now = self._now()
        return [rid for rid, expires in self.tables.pending() if is_expired(expires, now=now)]

    def check_decision(self, request_id: object, *, approver: Requester) -> RequestView:
        """Check that ``approver`` may decide this request now (the two-person rule, pending,
        not expired). Returns the view; raises otherwise."""
        view = self.view(request_id)
        check_approver(requester=Requester(view.row.organisation, view.row.role), approver=approver)
        if view.status is RequestStatus.APPROVED and self.already_approved_by(view, approver):
            return view  # the same identity again: counted once (see already_approved_by)
        check_pending(view.status)
        self._check_project_live(view.row.project)  # a re-identification of an ended project
        return view

    def already_approved_by(self, view: RequestView, approver: Requester) -> bool:
        return (approver.organisation, approver.role) in self.tables.approvals(view.row.id)

    def prepare_approval(
        self, request_id: object, *, approver: Requester
    ) -> PreparedRightsChange[RequestView]:
        """The approval of a pending request (after :meth:`check_decision`; a repeated
        approval by the same identity is no change: check :meth:`already_approved_by` first)."""
        view = self.check_decision(request_id, approver=approver)
        check_pending(view.status)
        row = view.row
        now = self._stamp()

        def facts(change_id: str, db: sqlite3.Connection) -> ChangeFacts:
            current = self._view_in(db, row.id)
            check_pending(current.status)  # decided or expired meanwhile: nothing committed
            return ChangeFacts(
                change_id=change_id, project=row.project,
                counts={"approvals": current.approvals + 1},
                details=_details(row, RequestStatus.APPROVED),
            )

        def write(db: sqlite3.Connection) -> RequestView:
            self.tables.insert_approval(
                db, row.id, organisation=approver.organisation, role=approver.role, at=now
            )
            self.tables.set_status(db, row.id, status=RequestStatus.APPROVED.value, decided_at=now)
            return self._view_in(db, row.id)

        return PreparedRightsChange(
            self.catalog, kind="rights_approval", committed_at=now, facts=facts, write=write
        )

    def prepare_refusal(
        self, request_id: object, *, approver: Requester, reason: object
    ) -> PreparedRightsChange[RequestView]:
        view = self.view(request_id)
        check_approver(requester=Requester(view.row.organisation, view.row.role), approver=approver)
        check_pending(view.status)
        text = check_reason(reason)
        row = view.row
        now = self._stamp()

        def facts(change_id: str, db: sqlite3.Connection) -> ChangeFacts:
            check_pending(self._view_in(db, row.id).status)
            details = _details(row, RequestStatus.REFUSED)
            details["reason_sha256"] = reason_sha256(text)  # the refusal's reason
            return ChangeFacts(change_id=change_id, project=row.project, details=details)

        def write(db: sqlite3.Connection) -> RequestView:
            self.tables.set_status(
                db, row.id, status=RequestStatus.REFUSED.value, decided_at=now,
                refusal_reason=text,
            )
            return self._view_in(db, row.id)

        return PreparedRightsChange(
            self.catalog, kind="rights_refusal", committed_at=now, facts=facts, write=write
        )

    # -- results --------------------------------------------------------------------------------

    def _deliverable(
        self, request_id: object, *, kind: RequestKind, caller: Requester,
        receives: Callable[[RequestRow], bool],
    ) -> RequestView:
        """The request, if its result is for ``caller`` (``receives``: else the same refusal as
        an unknown id, before anything about its status is said), approved and not yet
        delivered to the caller's organisation."""
        try:
            view = self.view(request_id)
        except NotFound:
            raise PermissionDenied(_NOT_YOURS.format(shown(request_id))) from None
        if view.row.kind != kind.value or not receives(view.row):
            raise PermissionDenied(_NOT_YOURS.format(shown(request_id)))
        if view.status not in (RequestStatus.APPROVED, RequestStatus.EXECUTED):
            raise FailedPrecondition(
                f"the request is {view.status.value}: results exist only for approved requests"
            )
        if self.tables.delivered(view.row.id, caller.organisation):
            raise FailedPrecondition("this result was already fetched: results are returned once")
        self._check_project_live(view.row.project)  # approved, but the project has ended since
        return view

    def _delivery(
        self, view: RequestView, caller: Requester, result: R, counts: dict[str, int]
    ) -> PreparedRightsChange[R]:
        row = view.row
        now = self._stamp()

        def facts(change_id: str, db: sqlite3.Connection) -> ChangeFacts:
            if self.tables.delivered(row.id, caller.organisation, db):
                raise FailedPrecondition("this result was already fetched: results are returned once")
            return ChangeFacts(
                change_id=change_id, project=row.project, counts=counts,
                details=_details(row, RequestStatus.EXECUTED),
            )

        def write(db: sqlite3.Connection) -> R:
            self.tables.insert_delivery(db, row.id, organisation=caller.organisation, at=now)
            self.tables.set_status(db, row.id, status=RequestStatus.EXECUTED.value, executed_at=now)
            return result

        return PreparedRightsChange(
            self.catalog, kind="rights_delivery", committed_at=now, facts=facts, write=write
        )

    def prepare_subject_access_report(
        self, request_id: object, *, caller: Requester
    ) -> PreparedRightsChange[dict[str, Any]]:
        """The report, computed now, to hand over once to the requester (same organisation
        and role) after its audit event."""
        view = self._deliverable(
            request_id, kind=RequestKind.SUBJECT_ACCESS, caller=caller,
            receives=lambda r: (caller.organisation, caller.role) == (r.organisation, r.role),
        )
        report = self._report(view.row)
        counts = {"datasets": len(report["datasets"]), "projects": len(report["projects"])}
        return self._delivery(view, caller, report, counts)

    def prepare_reidentified(
        self, request_id: object, *, caller: Requester
    ) -> PreparedRightsChange[tuple[str, list[ReidentifiedRecord]]]:
        """The caller's own records that the request names (linkage tokens, dataset, version,
        1-based row), with the request's reason, to hand over once to that provider."""
        providers: dict[tuple[str, int], str] = {}

        def receives(r: RequestRow) -> bool:
            assert r.project is not None
            for v, _ in self._project_versions(r.project):
                providers[(v.dataset, v.version)] = v.organisation
            return caller.organisation in providers.values()

        view = self._deliverable(
            request_id, kind=RequestKind.REIDENTIFY, caller=caller, receives=receives
        )
        row = view.row
        assert row.project is not None
        located = self._locate(row.project, row.domain, set(row.project_tokens))
        records = sorted(
            {
                rec for _, rec in located
                if providers.get((rec.dataset, rec.version)) == caller.organisation
            },
            key=lambda r: (r.dataset, r.version, r.row),
        )
        return self._delivery(view, caller, (row.reason, records), {"records": len(records)})

    # -- the register ---------------------------------------------------------------------------

    def register(self) -> dict[str, Any]:
        """Counts per month, kind and outcome (the status, expiry applied): no content."""
        counts: dict[tuple[str, str, str], int] = {}
        now = self._now()
        for month, kind, status, expires in self.tables.register_rows():
            if status == RequestStatus.PENDING.value and is_expired(expires, now=now):
                status = RequestStatus.EXPIRED.value
            key = (month, kind, status)
            counts[key] = counts.get(key, 0) + 1
        return {
            "months": [
                {"month": m, "kind": k, "outcome": s, "requests": n}
                for (m, k, s), n in sorted(counts.items())
            ]
        }

    # -- computing results ----------------------------------------------------------------------

    def _report(self, row: RequestRow) -> dict[str, Any]:
        held: dict[tuple[str, int], int] = {}
        datasets: list[dict[str, Any]] = []
        for name in self.catalog.dataset_names():
            for version in self.catalog.versions(name):
                n = self._records_of(version, row)
                if n:
                    held[(name, version.version)] = n
                    datasets.append({
                        "dataset": name,
                        "version": version.version,
                        "records": n,
                        "organisation": version.organisation,
                        "submitted_at": version.created_at,
                    })
        titles = {p.id: p.title for p in self.catalog.projects()}  # None: not recorded
        projects: dict[str, dict[str, Any]] = {}
        for extract in self._released_extracts():
            first = extract.datasets[0]
            if first not in held:
                continue  # the join starts from the first dataset: the person was not in it
            left_out = self._opted_out(extract.snapshot, row)
            entry = projects.setdefault(extract.project, {
                "project": extract.project,
                "title": titles.get(extract.project) or None,
                "extracts": [],
            })
            entry["extracts"].append({
                "created_at": extract.created_at,
                "datasets": [{"dataset": d, "version": v} for d, v in extract.datasets],
                "outcome": "left_out_by_optout" if left_out else "included",
                "optout_snapshot": extract.snapshot,
                "source": extract.source,
            })
        return {
            "format": "pseudogate-subject-access-v1",
            "request": row.id,
            "generated_at": self._stamp(),
            "domain": row.domain,
            "datasets": datasets,
            "projects": [projects[p] for p in sorted(projects)],
        }

    def _released_extracts(self) -> list[_Released]:
        """Every released extract: from the manifests the catalog keeps, then from the audit
        log's extract events for those released before manifests were kept (each kept
        manifest accounts for one event of its content hash, so none is counted twice)."""
        released: list[_Released] = []
        hashes: dict[str, int] = {}
        for kept in self.catalog.released_manifests():
            manifest = Manifest.from_json(kept.manifest_json)
            if not manifest.datasets:
                continue
            hashes[manifest.content_sha256] = hashes.get(manifest.content_sha256, 0) + 1
            released.append(_Released(
                project=manifest.project,
                created_at=manifest.created_at,
                datasets=tuple((d.name, d.version) for d in manifest.datasets),
                snapshot=manifest.optout_snapshot,
                source="manifest",
            ))
        for event in self.extract_events():
            details = event.get("details") or {}
            names, versions = details.get("datasets") or [], details.get("versions") or []
            digest = details.get("content_sha256")
            if (
                event.get("status") != "OK" or not names or len(names) != len(versions)
                or not isinstance(event.get("project"), str)
                or any(not isinstance(n, str) for n in names)
            ):
                continue
            if hashes.get(str(digest), 0) > 0:
                hashes[str(digest)] -= 1  # this release's manifest is kept: listed above
                continue
            released.append(_Released(
                project=event["project"],
                created_at=str(event.get("time", "")),
                datasets=tuple(zip(names, (int(v) for v in versions), strict=True)),
                snapshot=details.get("snapshot"),
                source="audit_log",
            ))
        return released

    def _records_of(self, version: VersionRecord, row: RequestRow) -> int:
        token = row.subject_tokens.get(version.linkage_key_id)
        columns = version.token_columns(row.domain)
        if token is None or not columns:
            return 0
        table = self.files.read(version.file, columns=columns)
        total = pa.array([False] * table.num_rows, type=pa.bool_())
        for name in columns:
            total = pc.or_(total, pc.equal(as_text(table.column(name)), token))
        return int(pc.sum(total.cast(pa.int64())).as_py() or 0)

    def _opted_out(self, snapshot: int | None, row: RequestRow) -> bool:
        if snapshot is None:
            return False
        found = [s for s in self.catalog.optout_snapshots() if s.id == snapshot]
        if not found:
            return False
        token = row.subject_tokens.get(found[0].linkage_key_id)
        return token is not None and self.tables.optout_holds(snapshot, token)

    def _manifests(self, project: str) -> list[Manifest]:
        """The manifests of ``project``'s released extracts, oldest first."""
        return [
            Manifest.from_json(kept.manifest_json)
            for kept in self.catalog.released_manifests()
            if kept.project == project
        ]

    def _version(self, dataset: str, number: int) -> VersionRecord | None:
        return next((v for v in self.catalog.versions(dataset) if v.version == number), None)

    def _project_versions(
        self, project: str, *, exact_only: bool = False
    ) -> list[tuple[VersionRecord, str]]:
        """Each dataset version a released extract of ``project`` named, with the project key
        its manifest names, oldest first, each once (``exact_only``: of exact extracts only)."""
        seen: dict[tuple[str, int], tuple[VersionRecord, str]] = {}
        for manifest in self._manifests(project):
            if exact_only and _probabilistic(manifest):
                continue
            for d in manifest.datasets:
                if (d.name, d.version) in seen:
                    continue
                version = self._version(d.name, d.version)
                if version is not None:
                    seen[(d.name, d.version)] = (version, manifest.key_ids.project)
        return list(seen.values())

    def _locate(
        self, project: str, domain: str, wanted: set[str]
    ) -> list[tuple[str, ReidentifiedRecord]]:
        """(project token, record) of every stored record whose linkage token re-keys to one
        of ``wanted`` under the project's key, in the versions its extracts named; for the
        extracts of a probabilistic project, every record of each cluster whose representative
        token re-keys to one of ``wanted`` (:meth:`_locate_clusters`)."""
        found = self._locate_clusters(project, domain, wanted)
        for version, project_key in self._project_versions(project, exact_only=True):
            columns = version.token_columns(domain)
            if len(columns) != 1:
                continue
            links = as_text(self.files.read(version.file, columns=columns).column(columns[0]))
            distinct = [t for t in pc.unique(links).to_pylist() if t]
            tokeniser = self.keyring.project_tokeniser(project, key_id=project_key)
            mapped = {
                link: p for link, p in zip(distinct, tokeniser.tokens(distinct), strict=True)
                if p in wanted
            }
            if not mapped:
                continue
            hits = pc.is_in(links, value_set=pa.array(sorted(mapped), type=pa.string()))
            for index in pc.indices_nonzero(hits).to_pylist():
                link = links[index].as_py()
                found.append((
                    mapped[link],
                    ReidentifiedRecord(version.dataset, version.version, int(index) + 1, link),
                ))
        return found

    def _locate_clusters(
        self, project: str, domain: str, wanted: set[str]
    ) -> list[tuple[str, ReidentifiedRecord]]:
        """For each released probabilistic extract of ``project`` (each distinct set of
        versions, threshold and project key once): the representative linkage tokens are
        recomputed over the versions the manifest names, in its order, exactly as the extract
        computed them (gateway/clusters.py), and every record of a cluster whose
        ``project_token(representative)`` is in ``wanted`` is returned, with the record's own
        NHS linkage token ("" when it has none: its provider finds it by dataset and row)."""
        found: list[tuple[str, ReidentifiedRecord]] = []
        done: set[tuple[object, ...]] = set()
        for manifest in self._manifests(project):
            linkage = manifest.linkage
            if linkage is None or not linkage.probabilistic or not manifest.datasets:
                continue
            assert linkage.threshold is not None
            named = tuple((d.name, d.version) for d in manifest.datasets)
            key = (named, linkage.threshold, manifest.key_ids.project)
            if key in done:
                continue
            done.add(key)
            found_versions = [self._version(name, number) for name, number in named]
            versions = [v for v in found_versions if v is not None]
            if len(versions) != len(named):
                continue  # a version no longer in the catalog: that extract cannot be redone
            layout = join_layout(versions, domain=domain, probabilistic=True)
            clustered = representative_links(
                versions, layout.link_columns, files=self.files, keyring=self.keyring,
                threshold=linkage.threshold,
            )
            tokeniser = self.keyring.project_tokeniser(project, key_id=manifest.key_ids.project)
            for version, column, reps in zip(
                versions, layout.link_columns, clustered.links, strict=True
            ):
                distinct = [t for t in pc.unique(reps).to_pylist() if t]
                mapped = {
                    rep: p for rep, p in zip(distinct, tokeniser.tokens(distinct), strict=True)
                    if p in wanted
                }
                if not mapped:
                    continue
                own = None
                if column is not None:
                    own = as_text(self.files.read(version.file, columns=[column]).column(column))
                hits = pc.is_in(reps, value_set=pa.array(sorted(mapped), type=pa.string()))
                for index in pc.indices_nonzero(hits).to_pylist():
                    link = own[index].as_py() if own is not None else None
                    found.append((
                        mapped[reps[index].as_py()],
                        ReidentifiedRecord(
                            version.dataset, version.version, int(index) + 1, link or ""
                        ),
                    ))
        return found


def _probabilistic(manifest: Manifest) -> bool:
    return manifest.linkage is not None and manifest.linkage.probabilistic


def _checked_project(value: object) -> str:
    try:
        return check_project_id(value)
    except InvalidInput:
        raise PermissionDenied(_PROJECT_DENIED.format(shown(value))) from None


def _checked_tokens(tokens: Sequence[object], *, limit: int) -> list[str]:
    if not tokens:
        raise InvalidInput("at least one project token is needed")
    if not all(isinstance(t, str) for t in tokens):
        raise InvalidInput("project tokens must be text")
    distinct = list(dict.fromkeys(str(t).strip() for t in tokens))
    if len(distinct) > limit:
        raise InvalidInput(
            f"a re-identification may name at most {limit} tokens (this one names "
            f"{len(distinct)}); the operator sets the limit"
        )
    return distinct


def _details(row: RequestRow, status: RequestStatus) -> dict[str, Any]:
    details: dict[str, Any] = {
        "request": row.id,
        "request_kind": row.kind,
        "request_status": status.value,
        "requester": row.organisation,
        "requester_role": row.role,
    }
    if status is RequestStatus.PENDING:
        details["reason_sha256"] = reason_sha256(row.reason)
        details["request_expires"] = row.expires_at
    return details
