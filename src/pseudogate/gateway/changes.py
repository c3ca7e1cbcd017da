"""One rule for every state change: prepare → audit event → commit, in that order.

A change (a submission, a project, an opt-out snapshot, an extract release...) is *prepared*
first: every check and all heavy work (tokenising, building the extract) is done and nothing is
visible yet. Then :meth:`PreparedChange.commit` runs :func:`commit_in_catalog`, which

1. opens the catalog's write transaction (one writer at a time) and *plans* the change: it
   reads what the commit will create (the next version, the next snapshot id), so the audit
   event can name it exactly;
2. hands the change's :class:`ChangeFacts` to ``record``, which writes the audit event. If
   ``record`` raises (the log cannot be written), the transaction rolls back: nothing is
   committed;
3. writes the change and a row in ``applied_changes`` under the change's random id, and
   commits, in the same transaction.

If the process dies between 2 and 3, the log holds an event whose change id the catalog never
applied; at start-up :func:`pseudogate.audit.reconcile.reconcile` appends a follow-up event
saying so. An extract has no catalog part: its "commit" is streaming it, after the event.

No transport here: the gateway's servicers reach this through
:func:`pseudogate.service.changes.apply_change`, which turns the facts into the call's event.
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import pyarrow.compute as pc

from pseudogate.core.errors import AlreadyExists
from pseudogate.core.statements import STATEMENT_FIELDS
from pseudogate.gateway.join import PERSON
from pseudogate.store.catalog import Catalog, OptOutSnapshot, ProjectRow

if TYPE_CHECKING:
    from pseudogate.gateway.extract import Extract

__all__ = [
    "ChangeFacts",
    "ExtractRelease",
    "PreparedChange",
    "PreparedOptOuts",
    "PreparedProject",
    "Recorder",
    "commit_in_catalog",
    "new_change_id",
    "unaudited",
]

R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)


@dataclass(frozen=True, slots=True)
class ChangeFacts:
    """What the audit event of a change records: names, ids and counts, never values.

    ``change_id`` is None for a change with nothing to commit in the store (an extract).
    """

    change_id: str | None
    dataset: str | None = None
    project: str | None = None
    policy_fingerprint: str | None = None
    key_ids: Mapping[str, str] = field(default_factory=dict)
    counts: Mapping[str, int] = field(default_factory=dict)
    details: Mapping[str, Any] = field(default_factory=dict)

    def event_details(self) -> dict[str, Any]:
        """The event's ``details``: the change id first, then the change's own."""
        head = {"change": self.change_id} if self.change_id is not None else {}
        return {**head, **self.details}


#: Writes the audit event for a change's facts; raises (Unavailable) if it cannot.
Recorder = Callable[[ChangeFacts], None]


def unaudited(facts: ChangeFacts) -> None:
    """The recorder of offline use (tests, tools): nothing is written. The gateway never uses
    it: its servicers commit through :func:`pseudogate.service.changes.apply_change`."""


class PreparedChange(Protocol[R_co]):
    """A change whose checks and heavy work are done, waiting to be audited and committed."""

    def commit(self, *, record: Recorder) -> R_co:
        """Plan, ``record(facts)``, then commit; if ``record`` raises, nothing is committed."""
        ...

    def abort(self) -> None:
        """Drop the prepared work (safe to call more than once, and after a commit)."""
        ...


def new_change_id() -> str:
    """A random change id: 32 lowercase hex digits, never derived from the data."""
    return secrets.token_hex(16)


def commit_in_catalog(
    catalog: Catalog,
    *,
    change_id: str,
    kind: str,
    committed_at: str,
    plan: Callable[[sqlite3.Connection], ChangeFacts],
    write: Callable[[sqlite3.Connection], R],
    record: Recorder,
) -> R:
    """The rule itself, for every change the catalog holds: plan → record → write + applied.

    ``plan`` runs inside the write transaction, so nothing else commits between it and
    ``write``: the facts it returns (the next version...) are what ``write`` creates.
    """
    with catalog.transaction() as db:
        facts = plan(db)
        if facts.change_id != change_id:
            raise ValueError("a change's facts must carry its own change id")
        record(facts)  # the audit event, before anything is committed
        result = write(db)
        catalog.insert_applied_change(db, change_id=change_id, kind=kind, committed_at=committed_at)
    return result


@dataclass
class ExtractRelease:
    """A built extract waiting to be released: its event is written, then it is streamed.

    Nothing is committed in the store, so it has no change id and is not reconciled at
    start-up; a stream that fails after the event gets a second event with its status. With a
    ``catalog``, the signed manifest is kept there after the event, for the public register
    (the manifest holds no token and no row).
    """

    extract: Extract
    catalog: Catalog | None = None

    def facts(self) -> ChangeFacts:
        manifest = self.extract.manifest
        details: dict[str, Any] = {
            "datasets": [d.name for d in manifest.datasets],
            "versions": [d.version for d in manifest.datasets],
            "content_sha256": manifest.content_sha256,
        }
        if manifest.optout_snapshot is not None:
            details["snapshot"] = manifest.optout_snapshot
        return ChangeFacts(
            change_id=None,
            project=manifest.project,
            policy_fingerprint=manifest.policy_fingerprint,
            key_ids=manifest.key_ids.to_json_dict(),
            counts={
                "rows": manifest.rows,
                "suppressed": manifest.suppressed,
                "datasets": len(manifest.datasets),
            },
            details=details,
        )

    def commit(self, *, record: Recorder) -> Extract:
        record(self.facts())
        if self.catalog is not None:
            self.catalog.insert_released_manifest(
                project=self.extract.project,
                created_at=self.extract.manifest.created_at,
                people=_people(self.extract),
                manifest_json=self.extract.manifest_json(),
            )
        return self.extract

    def abort(self) -> None:
        """Nothing to undo: the extract lives in memory only."""


def _people(extract: Extract) -> int:
    """Distinct people in an extract: its distinct non-empty ``person`` tokens (counted only)."""
    if PERSON not in extract.arrow.column_names:
        return 0
    distinct = pc.unique(extract.arrow.column(PERSON).combine_chunks())
    empty = bool(len(distinct)) and bool(pc.any(pc.equal(distinct, "")).as_py())
    return len(distinct) - int(empty)


@dataclass
class PreparedProject:
    """A validated project (policy parsed and checked against the datasets), not yet stored."""

    catalog: Catalog
    row: ProjectRow
    change_id: str = field(default_factory=new_change_id)

    def commit(self, *, record: Recorder) -> ProjectRow:
        row = self.row

        def plan(db: sqlite3.Connection) -> ChangeFacts:
            if self.catalog.project_exists(db, row.id):
                raise AlreadyExists(f"project {row.id!r} already exists")
            return ChangeFacts(
                change_id=self.change_id,
                project=row.id,
                policy_fingerprint=row.policy_fingerprint,
                key_ids={"project": row.project_key_id},
                counts={"datasets": len(row.datasets)},
                details={
                    "researcher": row.researcher,
                    "datasets": list(row.datasets),
                    "domain": row.domain,
                    "expires": row.expires,
                    "linkage": row.linkage,
                    **(
                        {}
                        if row.linkage_threshold is None
                        else {"linkage_threshold": row.linkage_threshold}
                    ),
                    # The public statements, as published (a project created before they were
                    # required has none; its events never had them).
                    **{
                        name: getattr(row, name)
                        for name in STATEMENT_FIELDS
                        if getattr(row, name) is not None
                    },
                },
            )

        def write(db: sqlite3.Connection) -> ProjectRow:
            self.catalog.insert_project(db, row)
            return row

        return commit_in_catalog(
            self.catalog, change_id=self.change_id, kind="project",
            committed_at=row.created_at, plan=plan, write=write, record=record,
        )

    def abort(self) -> None:
        """Nothing to undo: the project exists only in memory until committed."""


@dataclass
class PreparedOptOuts:
    """An opt-out import tokenised and checked, not yet stored (the next snapshot)."""

    catalog: Catalog
    domain: str
    tokens: list[str]
    linkage_key_id: str
    created_at: str
    change_id: str = field(default_factory=new_change_id)
    #: The snapshot this one replaced (None: the first), known once committed.
    previous: OptOutSnapshot | None = None

    def commit(self, *, record: Recorder) -> OptOutSnapshot:
        planned: dict[str, int] = {}

        def plan(db: sqlite3.Connection) -> ChangeFacts:
            planned["id"] = snapshot_id = self.catalog.next_optout_snapshot_id(db)
            previous = self.catalog.latest_optout_snapshot(self.domain, db)
            self.previous = previous
            details: dict[str, Any] = {"domain": self.domain}
            if previous is not None:
                details["previous_snapshot"] = previous.id
                details["previous_people"] = previous.count
            return ChangeFacts(
                change_id=self.change_id,
                key_ids={"linkage": self.linkage_key_id},
                counts={"snapshot": snapshot_id, "people": len(self.tokens)},
                details=details,
            )

        def write(db: sqlite3.Connection) -> OptOutSnapshot:
            return self.catalog.insert_optout_snapshot(
                db,
                domain=self.domain,
                tokens=self.tokens,
                linkage_key_id=self.linkage_key_id,
                created_at=self.created_at,
                snapshot_id=planned["id"],
            )

        return commit_in_catalog(
            self.catalog, change_id=self.change_id, kind="optouts",
            committed_at=self.created_at, plan=plan, write=write, record=record,
        )

    def abort(self) -> None:
        """Nothing to undo: the tokens exist only in memory until committed."""
