"""The audit log: hash-chained events in SQLite (WAL), with signed checkpoints.

Fail closed: :meth:`AuditLog.append` either commits the event or raises :class:`Unavailable`
(database locked past ``write_timeout``, log closed) or :class:`~pseudogate.core.errors.StorageFull`
(disk full; the path is logged), and the caller must then refuse the call. To exercise that in a test, hold a write lock on the database from another
connection (``BEGIN IMMEDIATE``) and append with a short ``write_timeout``.

Storage: ``events(seq, body, hash)`` where ``body`` is the event's canonical JSON (the exact
bytes the chain covers) and ``hash`` the raw 32-byte link; ``checkpoints(seq, hash, time,
signature)``. :func:`pseudogate.audit.verify.verify_database` re-checks both offline.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Self

from pseudogate.audit.chain import GENESIS_HASH, canonical_bytes, make_checkpoint, next_hash
from pseudogate.audit.events import (
    EVENT_FIELDS,
    AuditEvent,
    now_rfc3339,
    prepare_event,
    rfc3339,
    utc_now,
)
from pseudogate.core.clock import Clock
from pseudogate.core.errors import ResourceExhausted, Unavailable, is_storage_full, storage_full
from pseudogate.core.keyring import Signer

__all__ = ["AUDIT_DB_NAME", "SCHEMA", "AuditLog"]

log = logging.getLogger(__name__)

#: File name of the audit database inside the data directory.
AUDIT_DB_NAME = "audit.sqlite3"

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq  INTEGER PRIMARY KEY,
    body TEXT NOT NULL,
    hash BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS checkpoints (
    seq       INTEGER PRIMARY KEY,
    hash      TEXT NOT NULL,
    time      TEXT NOT NULL,
    signature TEXT NOT NULL
);
"""

_SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")
_MAX_SEQ = 2**63 - 1
_INSERT_EVENT = "INSERT INTO events (seq, body, hash) VALUES (?, ?, ?)"


def _ordered(record: Mapping[str, Any]) -> dict[str, Any]:
    """Event fields in documentation order, then ``hash`` (readable export lines)."""
    out = {f: record[f] for f in EVENT_FIELDS if f in record}
    out.update((k, v) for k, v in record.items() if k not in out)
    return out


class AuditLog:
    """Append-only, hash-chained, checkpointed; safe for concurrent appends from many threads."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        *,
        path: Path,
        signer: Signer,
        clock: Clock,
        checkpoint_every: int,
        checkpoint_seconds: float,
        write_timeout: float,
    ) -> None:
        self.path = path
        self._conn = conn
        self._signer = signer
        # The time stamp of events and checkpoints; the default clock has a faster formatter.
        self._now: Callable[[], str] = (
            now_rfc3339 if clock is utc_now else (lambda: rfc3339(clock()))
        )
        self._every = checkpoint_every
        self._seconds = checkpoint_seconds
        self._write_timeout = write_timeout
        self._lock = threading.Lock()
        self._closed = False
        row = conn.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
        self._head_seq: int = row[0] if row else 0
        self._head_hash: bytes = bytes(row[1]) if row else GENESIS_HASH
        row = conn.execute("SELECT max(seq) FROM checkpoints").fetchone()
        self._checkpoint_seq: int = row[0] or 0
        self._stop = threading.Event()
        self._timer: threading.Thread | None = None
        if checkpoint_seconds > 0:
            self._timer = threading.Thread(
                target=self._run_timer, name="audit-checkpoint", daemon=True
            )
            self._timer.start()

    @classmethod
    def open(
        cls,
        path: Path,
        *,
        signer: Signer,
        clock: Clock = utc_now,
        checkpoint_every: int = 1000,
        checkpoint_seconds: float = 60.0,
        write_timeout: float = 5.0,
        synchronous: str = "NORMAL",
    ) -> AuditLog:
        """Open (creating if needed) the log at ``path``; raises Unavailable if it cannot.

        ``synchronous`` is SQLite's: with WAL, ``NORMAL`` (the default) makes every committed
        event survive a crash of the gateway process; ``FULL`` also survives power loss at
        about 6x the cost per event (docs/performance.md, "Audit log").
        """
        if checkpoint_every < 1:
            raise ValueError("checkpoint_every must be at least 1")
        if synchronous not in _SYNCHRONOUS:
            raise ValueError(f"synchronous must be one of {', '.join(_SYNCHRONOUS)}")
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                path, timeout=write_timeout, isolation_level=None, check_same_thread=False
            )
            conn.execute(f"PRAGMA busy_timeout = {int(write_timeout * 1000)}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                conn.close()
                raise Unavailable(f"audit log {path}: cannot switch to WAL mode")
            conn.execute(f"PRAGMA synchronous = {synchronous}")
            conn.executescript(SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise Unavailable(f"audit log {path} cannot be opened: {_reason(exc)}") from None
        return cls(
            conn,
            path=path,
            signer=signer,
            clock=clock,
            checkpoint_every=checkpoint_every,
            checkpoint_seconds=checkpoint_seconds,
            write_timeout=write_timeout,
        )

    # -- writing --------------------------------------------------------------------------------

    def append(self, event: AuditEvent) -> dict[str, Any]:
        """Check the event, add ``seq`` and ``time``, chain and commit it as canonical JSON;
        return that record with its ``hash``.

        The event is checked and converted by :func:`pseudogate.audit.events.prepare_event`
        (:class:`InvalidInput` if malformed). Raises
        :class:`Unavailable` when the event cannot be committed: the caller must refuse the call.
        Malformed dataset/project names are recorded as null (:func:`safe_name`): a refused
        call's request text never reaches the log.
        """
        fields = prepare_event(event)
        self._acquire()
        try:
            conn = self._conn
            # The head is cached under the writer lock: this log is the database's only writer.
            # Should anything else have appended, the seq primary key refuses the insert and the
            # call fails closed rather than forking the chain.
            record = {"seq": self._head_seq + 1, "time": self._now(), **fields}
            body = canonical_bytes(record)
            link = next_hash(self._head_hash, body)
            checkpoint_due = record["seq"] - self._checkpoint_seq >= self._every
            try:
                if not checkpoint_due:
                    # One statement in autocommit mode is one transaction: cheap and atomic.
                    conn.execute(_INSERT_EVENT, (record["seq"], body.decode("utf-8"), link))
                else:
                    conn.execute("BEGIN IMMEDIATE")
                    try:
                        conn.execute(_INSERT_EVENT, (record["seq"], body.decode("utf-8"), link))
                        self._store_checkpoint(self._sign(record["seq"], link))
                        conn.execute("COMMIT")
                    except BaseException:
                        if conn.in_transaction:
                            conn.execute("ROLLBACK")
                        raise
            except sqlite3.IntegrityError:
                raise Unavailable(
                    "audit event could not be written: the log was appended to by another "
                    "writer; restart the gateway"
                ) from None
            except sqlite3.Error as exc:
                if is_storage_full(exc):
                    raise storage_full(self.path, exc) from None
                raise Unavailable(f"audit event could not be written: {_reason(exc)}") from None
            self._head_seq, self._head_hash = record["seq"], link
            if checkpoint_due:
                self._checkpoint_seq = record["seq"]
        finally:
            self._lock.release()
        record["hash"] = link.hex()
        return record

    def checkpoint(self) -> dict[str, Any]:
        """Sign the current head now, store the checkpoint, and return it."""
        self._acquire()
        try:
            seq, head = self._head_seq, self._head_hash
            checkpoint = self._sign(seq, head)
            if seq > 0:
                try:
                    self._store_checkpoint(checkpoint)
                except sqlite3.Error as exc:
                    if is_storage_full(exc):
                        raise storage_full(self.path, exc) from None
                    raise Unavailable(f"audit checkpoint could not be stored: {_reason(exc)}") from None
                self._checkpoint_seq = max(self._checkpoint_seq, seq)
            return checkpoint
        finally:
            self._lock.release()

    def head(self) -> tuple[int, bytes]:
        """The sequence number and chain hash of the last event (0 and 32 zero bytes if none)."""
        with self._lock:
            return self._head_seq, self._head_hash

    # -- reading --------------------------------------------------------------------------------

    def records(self, *, from_seq: int = 1) -> Iterator[dict[str, Any]]:
        """Events from ``from_seq`` in order, each stored checkpoint right after the event it
        covers, ending with a checkpoint signed now that covers the last event.

        Reads one consistent snapshot (a WAL read transaction) on its own connection, so
        appends continue while an export streams.
        """
        from_seq = min(max(from_seq, 1), _MAX_SEQ)  # SQLite integers are 64-bit signed
        reader = self._reader()
        try:
            try:
                reader.execute("BEGIN")
                row = reader.execute(
                    "SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1"
                ).fetchone()
                last_seq, last_hash = (row[0], bytes(row[1])) if row else (0, GENESIS_HASH)
                stored = {
                    r[0]: {"seq": r[0], "hash": r[1], "time": r[2], "signature": r[3]}
                    for r in reader.execute(
                        "SELECT seq, hash, time, signature FROM checkpoints"
                        " WHERE seq >= ? AND seq < ?",
                        (from_seq, last_seq),
                    )
                }
                cursor = reader.execute(
                    "SELECT seq, body, hash FROM events WHERE seq >= ? AND seq <= ? ORDER BY seq",
                    (from_seq, last_seq),
                )
                for seq, body, link in cursor:
                    record = _ordered(json.loads(body))
                    record["hash"] = bytes(link).hex()
                    yield record
                    if seq in stored:
                        yield stored[seq]
            except sqlite3.Error as exc:
                raise Unavailable(f"audit log cannot be read: {_reason(exc)}") from None
        finally:
            reader.close()
        yield self._final_checkpoint(last_seq, last_hash)

    def change_events(self, *, after_seq: int = 0) -> Iterator[dict[str, Any]]:
        """Events after ``after_seq`` whose ``details`` name a change id, in order.

        Start-up reconciliation reads these; the SQL filter keeps it fast on a long log (only
        state changes have a change id). Read on its own connection, like :meth:`records`.
        """
        after_seq = min(max(after_seq, 0), _MAX_SEQ)
        reader = self._reader()
        try:
            cursor = reader.execute(
                "SELECT body FROM events WHERE seq > ? AND instr(body, '\"change\":') > 0"
                " ORDER BY seq",
                (after_seq,),
            )
            for (body,) in cursor:
                event = json.loads(body)
                if isinstance(event.get("details"), dict) and "change" in event["details"]:
                    yield event
        except sqlite3.Error as exc:
            raise Unavailable(f"audit log cannot be read: {_reason(exc)}") from None
        finally:
            reader.close()

    def events_of(self, method: str) -> Iterator[dict[str, Any]]:
        """Events of one RPC (its full method name), in order; read on their own connection.

        Subject access reads the extract events with this (docs/rights.md): extracts released
        before manifests were kept in the catalog are known from their events only.
        """
        reader = self._reader()
        try:
            cursor = reader.execute(
                "SELECT body FROM events WHERE instr(body, ?) > 0 ORDER BY seq",
                (json.dumps(method),),
            )
            for (body,) in cursor:
                event = json.loads(body)
                if event.get("method") == method:
                    yield event
        except sqlite3.Error as exc:
            raise Unavailable(f"audit log cannot be read: {_reason(exc)}") from None
        finally:
            reader.close()

    def _reader(self) -> sqlite3.Connection:
        """A read-only connection of its own, so reads never hold up appends."""
        try:
            return sqlite3.connect(
                f"file:{self.path}?mode=ro", uri=True, isolation_level=None,
                timeout=self._write_timeout,
            )
        except sqlite3.Error as exc:
            raise Unavailable(f"audit log cannot be read: {_reason(exc)}") from None

    # -- lifecycle ------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the timer, checkpoint any events added since the last checkpoint, and close."""
        if self._closed:
            return
        self._stop.set()
        if self._timer is not None:
            self._timer.join()
        try:
            if self._head_seq > self._checkpoint_seq:
                self.checkpoint()
        finally:
            with self._lock:
                self._closed = True
                self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ------------------------------------------------------------------------------

    def _acquire(self) -> None:
        if not self._lock.acquire(timeout=self._write_timeout):
            raise Unavailable("audit log is busy: write lock not acquired in time")
        if self._closed:
            self._lock.release()
            raise Unavailable("audit log is closed")

    def _sign(self, seq: int, head: bytes) -> dict[str, Any]:
        return make_checkpoint(seq, head, self._now(), self._signer.sign)

    def _store_checkpoint(self, checkpoint: Mapping[str, Any]) -> None:
        self._conn.execute(
            "INSERT OR IGNORE INTO checkpoints (seq, hash, time, signature) VALUES (?, ?, ?, ?)",
            (checkpoint["seq"], checkpoint["hash"], checkpoint["time"], checkpoint["signature"]),
        )

    def _final_checkpoint(self, seq: int, head: bytes) -> dict[str, Any]:
        """Sign (and, if the log is open, store) a checkpoint for the end of an export."""
        checkpoint = self._sign(seq, head)
        if seq == 0:
            return checkpoint
        self._acquire()
        try:
            self._store_checkpoint(checkpoint)
            self._checkpoint_seq = max(self._checkpoint_seq, seq)
        except sqlite3.Error as exc:
            raise Unavailable(f"audit checkpoint could not be stored: {_reason(exc)}") from None
        finally:
            self._lock.release()
        return checkpoint

    def _run_timer(self) -> None:
        while not self._stop.wait(self._seconds):
            if self._head_seq > self._checkpoint_seq:
                try:
                    self.checkpoint()
                except (Unavailable, ResourceExhausted) as exc:
                    log.warning("periodic audit checkpoint failed: %s", exc)


def _reason(exc: BaseException) -> str:
    """A short, value-free reason: SQLite's error text names conditions, never data."""
    if isinstance(exc, sqlite3.Error):
        return str(exc) or type(exc).__name__
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    return type(exc).__name__
