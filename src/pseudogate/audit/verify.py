"""Offline verification of an exported audit log (JSON lines) or of the SQLite log itself.

An auditor needs only the export and the gateway's public key. Verification recomputes the
chain from ``hash_0`` and checks every checkpoint; the first problem raises
:class:`VerificationFailed` naming the first bad sequence number (``exc.seq``).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from pseudogate.audit.chain import (
    CHECKPOINT_FIELDS,
    GENESIS_HASH,
    canonical_bytes,
    next_hash,
    verify_checkpoint_signature,
)
from pseudogate.audit.events import TIME_RE, details_ok
from pseudogate.core.errors import VerificationFailed

__all__ = ["AuditVerificationFailed", "VerificationReport", "verify_database", "verify_export"]


class AuditVerificationFailed(VerificationFailed):
    """The log does not verify; ``seq`` is the first sequence number that is bad."""

    def __init__(self, seq: int, reason: str) -> None:
        self.seq = seq
        self.reason = reason
        super().__init__(f"first bad sequence number {seq}: {reason}")


@dataclass(frozen=True, slots=True)
class VerificationReport:
    """What was verified: every event up to ``last_seq`` chains to the signed head."""

    events: int
    checkpoints: int
    last_seq: int
    head_hash: str
    last_checkpoint_time: str | None
    unsigned_events: int = 0  # events after the last checkpoint (only in a live database)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise ValueError("duplicate key")
    return obj


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _parse(line: str) -> Any:
    return json.loads(line, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)


def _is_seq(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


PublicKeys = Ed25519PublicKey | Sequence[Ed25519PublicKey]


def _key_tuple(public_keys: PublicKeys) -> tuple[Ed25519PublicKey, ...]:
    keys = (public_keys,) if isinstance(public_keys, Ed25519PublicKey) else tuple(public_keys)
    if not keys:
        raise ValueError("at least one public key is needed")
    return keys


class _Chain:
    """The running recomputation shared by both verifiers."""

    def __init__(self, public_keys: PublicKeys) -> None:
        # Several keys: a log that spans a rotation of the gateway's signing key has
        # checkpoints signed under each; every checkpoint must verify under one of them.
        self.public_keys = _key_tuple(public_keys)
        self.seq = 0
        self.head = GENESIS_HASH
        self.events = 0
        self.checkpoints = 0
        self.signed_seq = 0  # last seq covered by a valid checkpoint
        self.last_checkpoint_time: str | None = None
        self.changes: dict[str, int] = {}  # change id -> seq of the event that claimed it

    def fields(self, seq: int, event: dict[str, Any]) -> None:
        """Check an event's ``details`` as the log checks them when it writes them, and that a
        follow-up event settles an earlier event of the same change. (The chain, not this,
        protects the other fields; the construction's test vector predates their patterns.)"""
        if "details" not in event:
            return
        details = event["details"]
        if not details_ok(details):
            raise AuditVerificationFailed(seq, "event details are not well formed")
        change, reconciles = details.get("change"), details.get("reconciles")
        if reconciles is not None:
            if self.changes.get(change) != reconciles:
                raise AuditVerificationFailed(
                    seq, f"follow-up event names seq {reconciles}, which is not an earlier "
                    "event of the same change"
                )
        elif change is not None and event.get("status") == "OK":
            self.changes[change] = seq

    def event(self, seq: Any, canonical: bytes, claimed_hash: Any) -> None:
        expected = self.seq + 1
        if not _is_seq(seq):
            raise AuditVerificationFailed(expected, "event has no integer seq")
        if seq != expected:
            raise AuditVerificationFailed(
                expected, f"expected seq {expected} but found seq {seq} (missing, inserted or "
                "reordered event)"
            )
        link = next_hash(self.head, canonical)
        if claimed_hash != link.hex():
            hint = (
                f" (event {seq} was edited, or event {seq - 1} was edited and its hash rebuilt)"
                if seq > 1 else " (event 1 was edited)"
            )
            raise AuditVerificationFailed(
                seq, "hash does not match the event's content and the previous hash" + hint
            )
        self.seq, self.head = seq, link
        self.events += 1

    def checkpoint(self, record: Any) -> None:
        first_unsigned = self.signed_seq + 1
        if not isinstance(record, dict) or set(record) != set(CHECKPOINT_FIELDS):
            raise AuditVerificationFailed(
                first_unsigned, "checkpoint must have exactly seq, hash, time and signature"
            )
        seq = record["seq"]
        if not _is_seq(seq) or seq != self.seq:
            bad = self.seq + 1 if not _is_seq(seq) or seq > self.seq else max(seq + 1, 1)
            raise AuditVerificationFailed(
                bad,
                f"checkpoint for seq {seq} is not right after the event it covers "
                f"(last event seq {self.seq})",
            )
        if not isinstance(record["time"], str) or not TIME_RE.fullmatch(record["time"]):
            raise AuditVerificationFailed(first_unsigned, f"checkpoint at seq {seq}: malformed time")
        if record["hash"] != self.head.hex():
            raise AuditVerificationFailed(
                first_unsigned,
                f"checkpoint at seq {seq} does not match the recomputed chain: an event between "
                f"seq {first_unsigned} and {seq} was altered, inserted or removed",
            )
        if not any(self._signed_by(record, key) for key in self.public_keys):
            under = (
                "the public key"
                if len(self.public_keys) == 1
                else f"any of the {len(self.public_keys)} public keys"
            )
            raise AuditVerificationFailed(
                first_unsigned, f"checkpoint at seq {seq}: signature does not verify under {under}"
            )
        self.checkpoints += 1
        self.signed_seq = seq
        self.last_checkpoint_time = record["time"]

    @staticmethod
    def _signed_by(record: dict[str, Any], key: Ed25519PublicKey) -> bool:
        try:
            verify_checkpoint_signature(record, key)
        except VerificationFailed:
            return False
        return True

    def report(self, *, unsigned: int = 0) -> VerificationReport:
        return VerificationReport(
            events=self.events,
            checkpoints=self.checkpoints,
            last_seq=self.seq,
            head_hash=self.head.hex(),
            last_checkpoint_time=self.last_checkpoint_time,
            unsigned_events=unsigned,
        )


def verify_export(lines: Iterable[str], public_key: PublicKeys) -> VerificationReport:
    """Verify an export (one JSON object per line, starting at seq 1, ending with a checkpoint).

    ``public_key`` is the gateway's public key, or several (the log spans a key rotation):
    every checkpoint must verify under one of them.

    Raises :class:`AuditVerificationFailed` (a :class:`VerificationFailed`) naming the first bad
    sequence number on an edited, deleted, inserted or reordered event, event ``details`` the
    log would not have written (free text, unknown entries), a follow-up event that names no
    earlier event of its change, a bad checkpoint, no checkpoint at all, or events after the
    last checkpoint.
    """
    chain = _Chain(public_key)
    last_was_checkpoint = False
    for line in lines:
        if not line.strip():
            continue
        try:
            record = _parse(line)
        except (ValueError, RecursionError):
            raise AuditVerificationFailed(
                chain.seq + 1, "a line is not a well-formed JSON object"
            ) from None
        if not isinstance(record, dict):
            raise AuditVerificationFailed(chain.seq + 1, "a line is not a JSON object")
        if "signature" in record:
            chain.checkpoint(record)
            last_was_checkpoint = True
        else:
            chain.event(record.get("seq"), canonical_bytes(record), record.get("hash"))
            chain.fields(chain.seq, record)
            last_was_checkpoint = False
    if chain.checkpoints == 0:
        raise AuditVerificationFailed(1, "the export has no checkpoint")
    if not last_was_checkpoint:
        raise AuditVerificationFailed(
            chain.signed_seq + 1, "events follow the last checkpoint (unsigned tail)"
        )
    return chain.report()


def verify_database(path: Path, public_key: PublicKeys) -> VerificationReport:
    """Verify the SQLite log in place (read-only): chain, canonical bodies and checkpoints.

    Events after the last stored checkpoint are chained but not yet signed; the report counts
    them as ``unsigned_events`` rather than failing (a live log always has some).
    """
    try:
        conn = sqlite3.connect(f"file:{Path(path)}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise VerificationFailed(f"cannot open audit database {path}: {exc}") from None
    try:
        conn.execute("BEGIN")
        stored = {
            r[0]: {"seq": r[0], "hash": r[1], "time": r[2], "signature": r[3]}
            for r in conn.execute("SELECT seq, hash, time, signature FROM checkpoints")
        }
        chain = _Chain(public_key)
        for seq, body, link in conn.execute("SELECT seq, body, hash FROM events ORDER BY seq"):
            expected = chain.seq + 1
            if not isinstance(body, str):
                raise AuditVerificationFailed(expected, "stored event body is not text")
            try:
                event = _parse(body)
            except (ValueError, RecursionError):
                raise AuditVerificationFailed(expected, "stored event is not JSON") from None
            if not isinstance(event, dict) or "hash" in event or "signature" in event:
                raise AuditVerificationFailed(expected, "stored event is not an event object")
            canonical = canonical_bytes(event)
            if canonical != body.encode("utf-8"):
                raise AuditVerificationFailed(expected, "stored event is not in canonical form")
            if event.get("seq") != seq:
                raise AuditVerificationFailed(
                    expected, f"row seq {seq} holds an event numbered {event.get('seq')}"
                )
            stored_hash = bytes(link).hex() if isinstance(link, bytes) else link
            chain.event(seq, canonical, stored_hash)
            chain.fields(seq, event)
            if seq in stored:
                chain.checkpoint(stored.pop(seq))
        if stored:
            orphan = min(stored)
            raise AuditVerificationFailed(
                chain.seq + 1,
                f"a checkpoint covers seq {orphan} but the log ends at seq {chain.seq} "
                "(events were removed)",
            )
    except sqlite3.Error as exc:
        raise VerificationFailed(f"cannot read audit database {path}: {exc}") from None
    finally:
        conn.close()
    return chain.report(unsigned=chain.seq - chain.signed_seq)
