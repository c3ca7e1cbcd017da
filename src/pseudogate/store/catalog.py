"""The SQLite catalog: datasets, versions, projects, opt-out snapshots and applied changes.

One file, ``catalog.sqlite3``, in the data directory. Every write is one transaction
(``BEGIN IMMEDIATE``), so a crash leaves the catalog as it was before or after, never between.
It holds names, counts, fingerprints, key ids and tokens; never a raw identifier.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pseudogate.core.errors import translating_storage_full

__all__ = [
    "Catalog",
    "ColumnInfo",
    "OptOutSnapshot",
    "ProjectRow",
    "ReleasedManifest",
    "VersionRecord",
]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS datasets (
    name TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS versions (
    dataset TEXT NOT NULL REFERENCES datasets(name),
    version INTEGER NOT NULL,
    file TEXT NOT NULL,
    rows INTEGER NOT NULL,
    columns_json TEXT NOT NULL,
    policy_name TEXT NOT NULL,
    policy_fingerprint TEXT NOT NULL,
    linkage_key_id TEXT NOT NULL,
    organisation TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (dataset, version)
);
CREATE TABLE IF NOT EXISTS projects (
    id TEXT PRIMARY KEY,
    researcher TEXT NOT NULL,
    datasets_json TEXT NOT NULL,
    domain TEXT NOT NULL,
    policy_text TEXT NOT NULL,
    policy_files_json TEXT NOT NULL,
    policy_fingerprint TEXT NOT NULL,
    project_key_id TEXT NOT NULL,
    expires TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS optout_snapshots (
    id INTEGER PRIMARY KEY,
    domain TEXT NOT NULL,
    count INTEGER NOT NULL,
    linkage_key_id TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS optout_tokens (
    snapshot INTEGER NOT NULL REFERENCES optout_snapshots(id),
    token TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS optout_tokens_snapshot ON optout_tokens(snapshot);
CREATE TABLE IF NOT EXISTS applied_changes (
    change_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    committed_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_reconciliation (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    through_seq INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS released_manifests (
    id INTEGER PRIMARY KEY,
    project TEXT NOT NULL,
    created_at TEXT NOT NULL,
    people INTEGER NOT NULL,
    manifest_json TEXT NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class ColumnInfo:
    """A stored column: its name, what ingestion did to it and, for tokens, the domain.

    ``kind`` is the normalisation kind of a token column, or the encoding's name
    (``pg-fbf-v1``) of the sealed linkage encoding column (action ``encode``).
    """

    name: str
    action: str  # "tokenise" | "keep" | "encode"
    domain: str | None = None
    kind: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "action": self.action, "domain": self.domain, "kind": self.kind}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ColumnInfo:
        return cls(data["name"], data["action"], data.get("domain"), data.get("kind"))


@dataclass(frozen=True, slots=True)
class VersionRecord:
    """One committed dataset version (one Parquet file)."""

    dataset: str
    version: int
    file: str  # relative to the data directory
    rows: int
    columns: tuple[ColumnInfo, ...]
    policy_name: str
    policy_fingerprint: str
    linkage_key_id: str
    organisation: str
    created_at: str

    def token_columns(self, domain: str) -> list[str]:
        """Names of the columns tokenised under ``domain``."""
        return [c.name for c in self.columns if c.action == "tokenise" and c.domain == domain]

    @property
    def encoding_column(self) -> str | None:
        """The column holding the records' sealed linkage encodings (action ``encode``), or
        None when the version was submitted without identity fields."""
        return next((c.name for c in self.columns if c.action == "encode"), None)


@dataclass(frozen=True, slots=True)
class ProjectRow:
    id: str
    researcher: str
    datasets: tuple[str, ...]
    domain: str
    policy_text: str
    policy_files: dict[str, bytes]
    policy_fingerprint: str
    project_key_id: str
    expires: str  # YYYY-MM-DD
    created_at: str
    linkage: str = "exact"  # "exact" | "probabilistic" (core.linkage_method.LinkageMethod)
    linkage_threshold: float | None = None  # probabilistic only
    # The public statements (core/statements.py); None: the project was created before they
    # were recorded (the register shows "not recorded").
    title: str | None = None
    purpose: str | None = None
    legal_basis: str | None = None
    public_benefit: str | None = None


#: Columns added to ``projects`` after its first release: (name, definition). A catalog made
#: before them gets them on open, with values that keep its projects as they were (exact).
_PROJECT_MIGRATIONS: tuple[tuple[str, str], ...] = (
    ("linkage", "TEXT NOT NULL DEFAULT 'exact'"),
    ("linkage_threshold", "REAL"),
    ("title", "TEXT"),  # NULL: created before projects stated it (shown "not recorded")
    ("purpose", "TEXT"),
    ("legal_basis", "TEXT"),
    ("public_benefit", "TEXT"),
)
_PROJECT_COLUMNS = (
    "id, researcher, datasets_json, domain, policy_text, policy_files_json, policy_fingerprint,"
    " project_key_id, expires, created_at, linkage, linkage_threshold,"
    " title, purpose, legal_basis, public_benefit"
)


@dataclass(frozen=True, slots=True)
class OptOutSnapshot:
    """An opt-out snapshot: its id, how many distinct people, and how they were tokenised."""

    id: int
    count: int
    domain: str
    linkage_key_id: str
    created_at: str


@dataclass(frozen=True, slots=True)
class ReleasedManifest:
    """A released extract's signed manifest, kept for the public register.

    ``manifest_json`` is the exact text the gateway sent (it holds names, counts, key ids,
    hashes and the signature: no token and no row); ``people`` is how many distinct people the
    extract covered (its distinct ``person`` tokens, counted, never kept).
    """

    id: int
    project: str
    created_at: str
    people: int
    manifest_json: str


class Catalog:
    """Access to ``catalog.sqlite3``; one short-lived connection per operation (thread-safe)."""

    FILE_NAME = "catalog.sqlite3"

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / self.FILE_NAME
        self._write_lock = threading.Lock()
        with self._connect() as db:
            db.executescript(_SCHEMA)
        self._migrate()

    def _migrate(self) -> None:
        """Add the columns later releases added, in one transaction (old rows keep meaning)."""
        with self.read() as db:
            present = {r[1] for r in db.execute("PRAGMA table_info(projects)")}
        missing = [(n, d) for n, d in _PROJECT_MIGRATIONS if n not in present]
        if not missing:
            return
        with self.transaction() as db:
            present = {r[1] for r in db.execute("PRAGMA table_info(projects)")}
            for name, definition in missing:
                if name not in present:
                    db.execute(f"ALTER TABLE projects ADD COLUMN {name} {definition}")

    def _connect(self) -> contextlib.closing[sqlite3.Connection]:
        db = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
        db.execute("PRAGMA foreign_keys = ON")
        db.execute("PRAGMA synchronous = FULL")
        return contextlib.closing(db)

    @contextlib.contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        with self._connect() as db:
            yield db

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: committed when the block ends, rolled back on any error."""
        with self._write_lock, self._connect() as db, translating_storage_full(self.path):
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                if db.in_transaction:  # SQLITE_FULL, for one, has already rolled it back
                    db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    # -- datasets and versions ----------------------------------------------------------------

    def dataset_owner(self, name: str, db: sqlite3.Connection | None = None) -> str | None:
        if db is None:
            with self.read() as conn:
                return self.dataset_owner(name, conn)
        row = db.execute("SELECT owner FROM datasets WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def dataset_names(self) -> list[str]:
        with self.read() as db:
            return [r[0] for r in db.execute("SELECT name FROM datasets ORDER BY name")]

    def latest_version(self, name: str) -> VersionRecord | None:
        with self.read() as db:
            row = db.execute(
                "SELECT * FROM versions WHERE dataset = ? ORDER BY version DESC LIMIT 1", (name,)
            ).fetchone()
        return None if row is None else _version(row)

    def versions(self, name: str) -> list[VersionRecord]:
        with self.read() as db:
            rows = db.execute(
                "SELECT * FROM versions WHERE dataset = ? ORDER BY version", (name,)
            ).fetchall()
        return [_version(r) for r in rows]

    def version_files(self) -> set[str]:
        with self.read() as db:
            return {r[0] for r in db.execute("SELECT file FROM versions")}

    @staticmethod
    def next_version(db: sqlite3.Connection, dataset: str) -> int:
        row = db.execute(
            "SELECT COALESCE(MAX(version), 0) FROM versions WHERE dataset = ?", (dataset,)
        ).fetchone()
        return int(row[0]) + 1

    @staticmethod
    def insert_dataset(db: sqlite3.Connection, name: str, owner: str, created_at: str) -> None:
        db.execute(
            "INSERT INTO datasets (name, owner, created_at) VALUES (?, ?, ?)",
            (name, owner, created_at),
        )

    @staticmethod
    def insert_version(db: sqlite3.Connection, record: VersionRecord) -> None:
        db.execute(
            "INSERT INTO versions (dataset, version, file, rows, columns_json, policy_name,"
            " policy_fingerprint, linkage_key_id, organisation, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                record.dataset,
                record.version,
                record.file,
                record.rows,
                json.dumps([c.to_json() for c in record.columns]),
                record.policy_name,
                record.policy_fingerprint,
                record.linkage_key_id,
                record.organisation,
                record.created_at,
            ),
        )

    # -- projects -------------------------------------------------------------------------------

    def project(self, project_id: str) -> ProjectRow | None:
        with self.read() as db:
            row = db.execute(
                f"SELECT {_PROJECT_COLUMNS} FROM projects WHERE id = ?", (project_id,)
            ).fetchone()
        return None if row is None else _project(row)

    @staticmethod
    def insert_project(db: sqlite3.Connection, p: ProjectRow) -> None:
        db.execute(
            f"INSERT INTO projects ({_PROJECT_COLUMNS}) VALUES ({', '.join('?' * 16)})",
            (
                p.id,
                p.researcher,
                json.dumps(list(p.datasets)),
                p.domain,
                p.policy_text,
                json.dumps({k: v.hex() for k, v in p.policy_files.items()}, sort_keys=True),
                p.policy_fingerprint,
                p.project_key_id,
                p.expires,
                p.created_at,
                p.linkage,
                p.linkage_threshold,
                p.title,
                p.purpose,
                p.legal_basis,
                p.public_benefit,
            ),
        )

    @staticmethod
    def project_exists(db: sqlite3.Connection, project_id: str) -> bool:
        return db.execute("SELECT 1 FROM projects WHERE id = ?", (project_id,)).fetchone() is not None

    # -- opt-outs -------------------------------------------------------------------------------

    @staticmethod
    def insert_optout_snapshot(
        db: sqlite3.Connection,
        *,
        domain: str,
        tokens: Sequence[str],
        linkage_key_id: str,
        created_at: str,
        snapshot_id: int | None = None,
    ) -> OptOutSnapshot:
        """Store a new snapshot with the next consecutive id (``snapshot_id``, if planned)."""
        next_id = Catalog.next_optout_snapshot_id(db)
        if snapshot_id is not None and snapshot_id != next_id:
            raise ValueError("an opt-out snapshot must take the next consecutive id")
        snapshot_id = next_id
        db.execute(
            "INSERT INTO optout_snapshots (id, domain, count, linkage_key_id, created_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (snapshot_id, domain, len(tokens), linkage_key_id, created_at),
        )
        db.executemany(
            "INSERT INTO optout_tokens (snapshot, token) VALUES (?, ?)",
            ((snapshot_id, t) for t in tokens),
        )
        return OptOutSnapshot(snapshot_id, len(tokens), domain, linkage_key_id, created_at)

    @staticmethod
    def next_optout_snapshot_id(db: sqlite3.Connection) -> int:
        row = db.execute("SELECT COALESCE(MAX(id), 0) FROM optout_snapshots").fetchone()
        return int(row[0]) + 1

    def latest_optout_snapshot(
        self, domain: str, db: sqlite3.Connection | None = None
    ) -> OptOutSnapshot | None:
        """The newest snapshot imported for ``domain`` (only the latest one applies)."""
        if db is None:
            with self.read() as conn:
                return self.latest_optout_snapshot(domain, conn)
        row = db.execute(
            "SELECT id, count, domain, linkage_key_id, created_at FROM optout_snapshots"
            " WHERE domain = ? ORDER BY id DESC LIMIT 1",
            (domain,),
        ).fetchone()
        return None if row is None else OptOutSnapshot(int(row[0]), int(row[1]), *row[2:])

    def optout_tokens(self, snapshot_id: int) -> list[str]:
        with self.read() as db:
            return [
                r[0]
                for r in db.execute(
                    "SELECT token FROM optout_tokens WHERE snapshot = ?", (snapshot_id,)
                )
            ]


    def referenced_key_ids(self) -> dict[str, dict[str, int]]:
        """Every key id a record names, with how many records of each kind (read-only)."""
        uses: dict[str, dict[str, int]] = {}
        queries = (
            ("dataset version(s)", "SELECT linkage_key_id, count(*) FROM versions GROUP BY 1"),
            ("project(s)", "SELECT project_key_id, count(*) FROM projects GROUP BY 1"),
            (
                "opt-out snapshot(s)",
                "SELECT linkage_key_id, count(*) FROM optout_snapshots GROUP BY 1",
            ),
        )
        with self.read() as db:
            for what, sql in queries:
                for key_id, count in db.execute(sql):
                    uses.setdefault(str(key_id), {})[what] = int(count)
        return uses
    # -- applied changes and audit reconciliation -------------------------------------------

    @staticmethod
    def insert_applied_change(
        db: sqlite3.Connection, *, change_id: str, kind: str, committed_at: str
    ) -> None:
        """Record, in the change's own transaction, that it was committed."""
        db.execute(
            "INSERT INTO applied_changes (change_id, kind, committed_at) VALUES (?, ?, ?)",
            (change_id, kind, committed_at),
        )

    def applied(self, change_ids: Iterable[str]) -> set[str]:
        """Which of ``change_ids`` were committed."""
        wanted = list(dict.fromkeys(change_ids))
        found: set[str] = set()
        with self.read() as db:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                marks = ",".join("?" * len(chunk))
                found.update(
                    r[0]
                    for r in db.execute(
                        f"SELECT change_id FROM applied_changes WHERE change_id IN ({marks})",
                        chunk,
                    )
                )
        return found

    # -- the public register (read-only listings and released manifests) ---------------------

    def insert_released_manifest(
        self, *, project: str, created_at: str, people: int, manifest_json: str
    ) -> ReleasedManifest:
        """Keep a released extract's manifest (after its audit event: see ExtractRelease)."""
        with self.transaction() as db:
            cursor = db.execute(
                "INSERT INTO released_manifests (project, created_at, people, manifest_json)"
                " VALUES (?, ?, ?, ?)",
                (project, created_at, people, manifest_json),
            )
            new_id = int(cursor.lastrowid or 0)
        return ReleasedManifest(new_id, project, created_at, people, manifest_json)

    def released_manifests(self) -> list[ReleasedManifest]:
        """Every kept manifest, oldest first."""
        with self.read() as db:
            rows = db.execute(
                "SELECT id, project, created_at, people, manifest_json FROM released_manifests"
                " ORDER BY id"
            ).fetchall()
        return [ReleasedManifest(int(r[0]), r[1], r[2], int(r[3]), r[4]) for r in rows]

    def datasets(self) -> list[tuple[str, str, str]]:
        """(name, owner, created_at) of every dataset, by name."""
        with self.read() as db:
            rows = db.execute("SELECT name, owner, created_at FROM datasets ORDER BY name")
            return [(str(r[0]), str(r[1]), str(r[2])) for r in rows]

    def projects(self) -> list[ProjectRow]:
        """Every project, by id."""
        with self.read() as db:
            rows = db.execute(f"SELECT {_PROJECT_COLUMNS} FROM projects ORDER BY id").fetchall()
        return [_project(row) for row in rows]

    def optout_snapshots(self) -> list[OptOutSnapshot]:
        """Every opt-out snapshot (ids and counts, never tokens), oldest first."""
        with self.read() as db:
            rows = db.execute(
                "SELECT id, count, domain, linkage_key_id, created_at FROM optout_snapshots"
                " ORDER BY id"
            ).fetchall()
        return [OptOutSnapshot(int(r[0]), int(r[1]), *r[2:]) for r in rows]

    def reconciled_through(self) -> int:
        """The audit seq up to which the log has been reconciled with this catalog (0: none)."""
        with self.read() as db:
            row = db.execute("SELECT through_seq FROM audit_reconciliation WHERE id = 1").fetchone()
        return 0 if row is None else int(row[0])

    def set_reconciled_through(self, seq: int) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO audit_reconciliation (id, through_seq) VALUES (1, ?)"
                " ON CONFLICT (id) DO UPDATE SET through_seq = excluded.through_seq",
                (seq,),
            )


def _version(row: Sequence[Any]) -> VersionRecord:
    columns = tuple(ColumnInfo.from_json(c) for c in json.loads(row[4]))
    return VersionRecord(
        dataset=row[0],
        version=int(row[1]),
        file=row[2],
        rows=int(row[3]),
        columns=columns,
        policy_name=row[5],
        policy_fingerprint=row[6],
        linkage_key_id=row[7],
        organisation=row[8],
        created_at=row[9],
    )


def _project(row: Sequence[Any]) -> ProjectRow:
    files = {k: bytes.fromhex(v) for k, v in json.loads(row[5]).items()}
    return ProjectRow(
        id=row[0],
        researcher=row[1],
        datasets=tuple(json.loads(row[2])),
        domain=row[3],
        policy_text=row[4],
        policy_files=files,
        policy_fingerprint=row[6],
        project_key_id=row[7],
        expires=row[8],
        created_at=row[9],
        linkage=row[10],
        linkage_threshold=None if row[11] is None else float(row[11]),
        title=row[12],
        purpose=row[13],
        legal_basis=row[14],
        public_benefit=row[15],
    )
