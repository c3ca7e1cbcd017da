"""People's rights requests in the catalog: the requests, their approvals and deliveries.

Three tables added beside the catalog's own (``CREATE TABLE IF NOT EXISTS``: a catalog made
before them gets them on open, and nothing else changes). They hold ids, names, times,
statuses, reasons (checked to hold no direct identifier) and tokens: a subject access request
keeps the person's linkage token(s), never the NHS number; a re-identification keeps the
project tokens the researcher sent. Results are never stored: they are computed when
fetched (docs/rights.md).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pseudogate.store.catalog import Catalog

__all__ = ["RequestRow", "RequestTables"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS rights_requests (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    reason TEXT NOT NULL,
    organisation TEXT NOT NULL,
    role TEXT NOT NULL,
    project TEXT,
    subject_tokens_json TEXT NOT NULL DEFAULT '{}',
    project_tokens_json TEXT NOT NULL DEFAULT '[]',
    domain TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    decided_at TEXT,
    refusal_reason TEXT,
    executed_at TEXT
);
CREATE TABLE IF NOT EXISTS rights_approvals (
    request TEXT NOT NULL REFERENCES rights_requests(id),
    organisation TEXT NOT NULL,
    role TEXT NOT NULL,
    approved_at TEXT NOT NULL,
    PRIMARY KEY (request, organisation, role)
);
CREATE TABLE IF NOT EXISTS rights_deliveries (
    request TEXT NOT NULL REFERENCES rights_requests(id),
    organisation TEXT NOT NULL,
    delivered_at TEXT NOT NULL,
    PRIMARY KEY (request, organisation)
);
"""

_COLUMNS = (
    "id, kind, reason, organisation, role, project, subject_tokens_json, project_tokens_json,"
    " domain, status, created_at, expires_at, decided_at, refusal_reason, executed_at"
)


@dataclass(frozen=True, slots=True)
class RequestRow:
    """One stored request. ``subject_tokens``: linkage key id -> the person's linkage token
    (subject access); ``project_tokens``: the tokens a re-identification names."""

    id: str
    kind: str
    reason: str
    organisation: str
    role: str
    project: str | None
    subject_tokens: Mapping[str, str]
    project_tokens: tuple[str, ...]
    domain: str
    status: str
    created_at: str
    expires_at: str
    decided_at: str | None = None
    refusal_reason: str | None = None
    executed_at: str | None = None


class RequestTables:
    """The rights tables of one catalog (created on first use)."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        with catalog.read() as db:
            db.executescript(_SCHEMA)  # as the catalog creates its own tables

    def get(self, request_id: str, db: sqlite3.Connection | None = None) -> RequestRow | None:
        if db is None:
            with self.catalog.read() as conn:
                return self.get(request_id, conn)
        row = db.execute(
            f"SELECT {_COLUMNS} FROM rights_requests WHERE id = ?", (request_id,)
        ).fetchone()
        return None if row is None else _row(row)

    @staticmethod
    def insert(db: sqlite3.Connection, r: RequestRow) -> None:
        db.execute(
            f"INSERT INTO rights_requests ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
            " ?, ?)",
            (
                r.id, r.kind, r.reason, r.organisation, r.role, r.project,
                json.dumps(dict(r.subject_tokens), sort_keys=True),
                json.dumps(list(r.project_tokens)), r.domain, r.status, r.created_at,
                r.expires_at, r.decided_at, r.refusal_reason, r.executed_at,
            ),
        )

    @staticmethod
    def set_status(
        db: sqlite3.Connection,
        request_id: str,
        *,
        status: str,
        decided_at: str | None = None,
        refusal_reason: str | None = None,
        executed_at: str | None = None,
    ) -> None:
        db.execute(
            "UPDATE rights_requests SET status = ?,"
            " decided_at = COALESCE(?, decided_at),"
            " refusal_reason = COALESCE(?, refusal_reason),"
            " executed_at = COALESCE(?, executed_at) WHERE id = ?",
            (status, decided_at, refusal_reason, executed_at, request_id),
        )

    def ids(self, *, organisation: str | None = None, role: str | None = None) -> list[str]:
        """Request ids, newest first; only those of ``organisation`` in ``role`` when given."""
        sql = "SELECT id FROM rights_requests"
        args: tuple[str, ...] = ()
        if organisation is not None and role is not None:
            sql += " WHERE organisation = ? AND role = ?"
            args = (organisation, role)
        with self.catalog.read() as db:
            return [str(r[0]) for r in db.execute(sql + " ORDER BY created_at DESC, id", args)]

    def pending(self) -> list[tuple[str, str]]:
        """(id, expires_at) of every pending request, oldest first (the expiry sweep)."""
        with self.catalog.read() as db:
            rows = db.execute(
                "SELECT id, expires_at FROM rights_requests WHERE status = 'pending'"
                " ORDER BY created_at, id"
            ).fetchall()
        return [(str(i), str(e)) for i, e in rows]

    def approvals(
        self, request_id: str, db: sqlite3.Connection | None = None
    ) -> list[tuple[str, str]]:
        """(organisation, role) of each distinct approver, oldest first."""
        if db is None:
            with self.catalog.read() as conn:
                return self.approvals(request_id, conn)
        rows = db.execute(
            "SELECT organisation, role FROM rights_approvals WHERE request = ?"
            " ORDER BY approved_at, organisation, role",
            (request_id,),
        ).fetchall()
        return [(str(a), str(b)) for a, b in rows]

    @staticmethod
    def insert_approval(
        db: sqlite3.Connection, request_id: str, *, organisation: str, role: str, at: str
    ) -> bool:
        """Record an approval; False when this identity had already approved (counted once)."""
        cursor = db.execute(
            "INSERT OR IGNORE INTO rights_approvals (request, organisation, role, approved_at)"
            " VALUES (?, ?, ?, ?)",
            (request_id, organisation, role, at),
        )
        return cursor.rowcount == 1

    def delivered(self, request_id: str, organisation: str,
                  db: sqlite3.Connection | None = None) -> bool:
        if db is None:
            with self.catalog.read() as conn:
                return self.delivered(request_id, organisation, conn)
        row = db.execute(
            "SELECT 1 FROM rights_deliveries WHERE request = ? AND organisation = ?",
            (request_id, organisation),
        ).fetchone()
        return row is not None

    @staticmethod
    def insert_delivery(
        db: sqlite3.Connection, request_id: str, *, organisation: str, at: str
    ) -> None:
        db.execute(
            "INSERT INTO rights_deliveries (request, organisation, delivered_at) VALUES (?, ?, ?)",
            (request_id, organisation, at),
        )

    def optout_holds(self, snapshot: int, token: str) -> bool:
        """Whether opt-out ``snapshot`` holds ``token`` (one lookup; nothing else is read)."""
        with self.catalog.read() as db:
            row = db.execute(
                "SELECT 1 FROM optout_tokens WHERE snapshot = ? AND token = ? LIMIT 1",
                (snapshot, token),
            ).fetchone()
        return row is not None

    def register_rows(self) -> list[tuple[str, str, str, str]]:
        """(month YYYY-MM, kind, status, expires_at) of every request: no content."""
        with self.catalog.read() as db:
            rows = db.execute(
                "SELECT substr(created_at, 1, 7), kind, status, expires_at FROM rights_requests"
            ).fetchall()
        return [(str(m), str(k), str(s), str(e)) for m, k, s, e in rows]


def _row(row: Sequence[Any]) -> RequestRow:
    return RequestRow(
        id=row[0],
        kind=row[1],
        reason=row[2],
        organisation=row[3],
        role=row[4],
        project=row[5],
        subject_tokens=json.loads(row[6]),
        project_tokens=tuple(json.loads(row[7])),
        domain=row[8],
        status=row[9],
        created_at=row[10],
        expires_at=row[11],
        decided_at=row[12],
        refusal_reason=row[13],
        executed_at=row[14],
    )
