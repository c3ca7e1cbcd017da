"""Tampering with an export or with the SQLite log is detected, naming the first bad seq."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pseudogate.audit import (
    AuditEvent,
    AuditLog,
    AuditVerificationFailed,
    canonical_bytes,
    next_hash,
    verify_database,
    verify_export,
)
from pseudogate.core.errors import VerificationFailed
from pseudogate.core.keyring import Signer

from .conftest import StepClock, sample_event


def _export(tmp_path: Path, signer: Signer, *, events: int = 10, every: int = 4) -> list[str]:
    path = tmp_path / "audit.sqlite3"
    with AuditLog.open(
        path, signer=signer, clock=StepClock(), checkpoint_every=every, checkpoint_seconds=0
    ) as log:
        for n in range(events):
            log.append(sample_event(n))
        return [json.dumps(r, ensure_ascii=False) for r in log.records()]


@pytest.fixture
def lines(tmp_path: Path, signer: Signer) -> list[str]:
    # E1 E2 E3 E4 C4 E5 E6 E7 E8 C8 E9 E10 C10
    return _export(tmp_path, signer)


def _index(lines: list[str], seq: int) -> int:
    for i, line in enumerate(lines):
        record = json.loads(line)
        if record["seq"] == seq and "signature" not in record:
            return i
    raise AssertionError(seq)


def _edit(lines: list[str], seq: int, change: Callable[[dict[str, Any]], None]) -> list[str]:
    out = list(lines)
    i = _index(out, seq)
    record = json.loads(out[i])
    change(record)
    out[i] = json.dumps(record)
    return out


def _first_bad(lines: list[str], key: Ed25519PublicKey) -> int:
    with pytest.raises(AuditVerificationFailed) as info:
        verify_export(lines, key)
    return info.value.seq


def test_when_export_is_untouched_then_it_verifies(
    lines: list[str], public_key: Ed25519PublicKey
) -> None:
    report = verify_export(lines, public_key)
    assert (report.events, report.checkpoints, report.last_seq) == (10, 3, 10)


def test_when_an_event_is_edited_then_its_seq_is_named(
    lines: list[str], public_key: Ed25519PublicKey
) -> None:
    tampered = _edit(lines, 6, lambda r: r.update(status="PERMISSION_DENIED"))
    assert _first_bad(tampered, public_key) == 6


def test_when_a_count_is_edited_then_its_seq_is_named(
    lines: list[str], public_key: Ed25519PublicKey
) -> None:
    tampered = _edit(lines, 2, lambda r: r["counts"].update(values=999))
    assert _first_bad(tampered, public_key) == 2


def test_when_an_event_is_deleted_then_the_missing_seq_is_named(
    lines: list[str], public_key: Ed25519PublicKey
) -> None:
    tampered = list(lines)
    del tampered[_index(tampered, 6)]
    assert _first_bad(tampered, public_key) == 6


def test_when_an_event_is_inserted_then_it_is_detected(
    lines: list[str], public_key: Ed25519PublicKey
) -> None:
    tampered = list(lines)
    tampered.insert(_index(tampered, 7), lines[_index(lines, 2)])
    assert _first_bad(tampered, public_key) == 7


def test_when_a_forged_event_with_a_correct_hash_is_inserted_then_the_next_is_named(
    lines: list[str], public_key: Ed25519PublicKey
) -> None:
    tampered = list(lines)
    i = _index(tampered, 7)
    previous = bytes.fromhex(json.loads(tampered[_index(tampered, 6)])["hash"])
    forged = {**json.loads(lines[i]), "status": "OK", "organisation": "ops"}
    forged.pop("hash")
    forged["hash"] = next_hash(previous, canonical_bytes(forged)).hex()
    tampered.insert(i, json.dumps(forged))
    # the forgery itself chains, so the genuine event 7 now sits where seq 8 belongs
    assert _first_bad(tampered, public_key) == 8


def test_when_events_are_reordered_then_the_first_displaced_seq_is_named(
    lines: list[str], public_key: Ed25519PublicKey
) -> None:
    tampered = list(lines)
    i, j = _index(tampered, 5), _index(tampered, 6)
    tampered[i], tampered[j] = tampered[j], tampered[i]
    assert _first_bad(tampered, public_key) == 5


def test_when_every_hash_is_recomputed_after_an_edit_then_the_checkpoint_catches_it(
    lines: list[str], public_key: Ed25519PublicKey
) -> None:
    records = [json.loads(line) for line in lines]
    head = bytes(32)
    for record in records:
        if "signature" in record:
            continue
        if record["seq"] == 6:
            record["status"] = "OK"
            record["counts"] = {"values": 0}
        record.pop("hash")
        head = next_hash(head, canonical_bytes(record))
        record["hash"] = head.hex()
    with pytest.raises(AuditVerificationFailed) as info:
        verify_export([json.dumps(r) for r in records], public_key)
    # chain is self-consistent; the checkpoint after the edit (seq 8) covers events 5..8
    assert info.value.seq == 5
    assert "checkpoint at seq 8" in str(info.value)


def test_when_a_checkpoint_is_signed_by_another_key_then_it_fails(
    lines: list[str], public_key: Ed25519PublicKey
) -> None:
    from pseudogate.audit import make_checkpoint

    other = Ed25519PrivateKey.generate()
    tampered = list(lines)
    last = json.loads(tampered[-1])
    tampered[-1] = json.dumps(
        make_checkpoint(last["seq"], bytes.fromhex(last["hash"]), last["time"], other.sign)
    )
    assert _first_bad(tampered, public_key) == 9


def test_when_verified_with_the_wrong_public_key_then_it_fails(lines: list[str]) -> None:
    with pytest.raises(VerificationFailed, match="signature"):
        verify_export(lines, Ed25519PrivateKey.generate().public_key())


def test_when_the_file_has_no_checkpoint_then_it_fails(
    lines: list[str], public_key: Ed25519PublicKey
) -> None:
    events_only = [line for line in lines if "signature" not in json.loads(line)]
    with pytest.raises(AuditVerificationFailed, match="no checkpoint"):
        verify_export(events_only, public_key)


def test_when_the_file_is_empty_then_it_fails(public_key: Ed25519PublicKey) -> None:
    with pytest.raises(AuditVerificationFailed, match="no checkpoint"):
        verify_export([], public_key)


def test_when_events_follow_the_last_checkpoint_then_it_fails_naming_the_first(
    lines: list[str], public_key: Ed25519PublicKey
) -> None:
    truncated = lines[:-1]  # drop the final checkpoint: events 9 and 10 are unsigned
    assert _first_bad(truncated, public_key) == 9


def test_when_tail_events_are_cut_before_the_final_checkpoint_then_it_fails(
    lines: list[str], public_key: Ed25519PublicKey
) -> None:
    tampered = [line for line in lines if json.loads(line).get("seq") != 10 or "signature" in line]
    assert _first_bad(tampered, public_key) == 10


def test_when_a_checkpoint_is_moved_then_it_fails(
    lines: list[str], public_key: Ed25519PublicKey
) -> None:
    tampered = list(lines)
    checkpoint = tampered.pop(_index(tampered, 4) + 1)
    tampered.insert(_index(tampered, 5) + 1, checkpoint)
    assert _first_bad(tampered, public_key) == 5


def test_when_a_duplicate_key_hides_an_edit_then_it_fails(
    lines: list[str], public_key: Ed25519PublicKey
) -> None:
    tampered = list(lines)
    i = _index(tampered, 3)
    tampered[i] = '{"status":"PERMISSION_DENIED",' + tampered[i][1:]
    assert _first_bad(tampered, public_key) == 3


def test_when_an_event_gains_a_signature_field_then_it_fails(
    lines: list[str], public_key: Ed25519PublicKey
) -> None:
    tampered = _edit(lines, 3, lambda r: r.update(signature="x"))
    with pytest.raises(AuditVerificationFailed):
        verify_export(tampered, public_key)


def test_when_seq_becomes_a_float_then_it_fails(
    lines: list[str], public_key: Ed25519PublicKey
) -> None:
    tampered = list(lines)
    i = _index(tampered, 2)
    tampered[i] = tampered[i].replace('"seq": 2,', '"seq": 2.0,')
    assert tampered[i] != lines[i]
    assert _first_bad(tampered, public_key) == 2


def test_when_a_line_is_not_json_then_it_fails(
    lines: list[str], public_key: Ed25519PublicKey
) -> None:
    tampered = list(lines)
    tampered.insert(_index(tampered, 4), "not json")
    assert _first_bad(tampered, public_key) == 4


def test_when_blank_lines_surround_records_then_they_are_ignored(
    lines: list[str], public_key: Ed25519PublicKey
) -> None:
    assert verify_export(["", *lines, "", "\n"], public_key).events == 10


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_when_any_single_event_line_is_changed_deleted_or_moved_then_verify_fails(
    lines: list[str], public_key: Ed25519PublicKey, data: st.DataObject
) -> None:
    event_seqs = [json.loads(x)["seq"] for x in lines if "signature" not in json.loads(x)]
    seq = data.draw(st.sampled_from(event_seqs))
    action = data.draw(st.sampled_from(["edit", "delete", "move", "duplicate"]))
    tampered = list(lines)
    i = _index(tampered, seq)
    if action == "edit":
        field = data.draw(st.sampled_from(["organisation", "role", "dataset", "time", "status"]))
        replacement = {
            "organisation": "ops", "role": "admin", "dataset": "other",
            "time": "2030-01-01T00:00:00.000Z", "status": "INTERNAL",
        }[field]
        tampered = _edit(tampered, seq, lambda r: r.update({field: replacement}))
    elif action == "delete":
        del tampered[i]
    elif action == "move":
        line = tampered.pop(i)
        j = data.draw(st.integers(0, len(tampered)).filter(lambda j: j != i))
        tampered.insert(j, line)
    else:
        j = data.draw(st.integers(0, len(tampered)))
        tampered.insert(j, tampered[i])
    with pytest.raises(AuditVerificationFailed) as info:
        verify_export(tampered, public_key)
    assert 1 <= info.value.seq <= 11


# -- the SQLite log itself ---------------------------------------------------------------------


@pytest.fixture
def db(tmp_path: Path, signer: Signer) -> Path:
    _export(tmp_path, signer)  # 10 events, checkpoints at 4, 8 and 10
    return tmp_path / "audit.sqlite3"


def _sql(db: Path, statement: str, *params: Any) -> None:
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute(statement, params)
    conn.close()


def _db_first_bad(db: Path, key: Ed25519PublicKey) -> int:
    with pytest.raises(AuditVerificationFailed) as info:
        verify_database(db, key)
    return info.value.seq


def test_when_the_database_is_untouched_then_it_verifies(
    db: Path, public_key: Ed25519PublicKey
) -> None:
    report = verify_database(db, public_key)
    assert (report.events, report.checkpoints, report.unsigned_events) == (10, 3, 0)


def test_when_a_stored_event_is_edited_in_sqlite_then_it_is_detected(
    db: Path, public_key: Ed25519PublicKey
) -> None:
    _sql(db, "UPDATE events SET body = replace(body, '\"OK\"', '\"NOT_FOUND\"') WHERE seq = 3")
    assert _db_first_bad(db, public_key) == 3


def test_when_a_stored_event_is_deleted_in_sqlite_then_it_is_detected(
    db: Path, public_key: Ed25519PublicKey
) -> None:
    _sql(db, "DELETE FROM events WHERE seq = 5")
    assert _db_first_bad(db, public_key) == 5


def test_when_the_last_events_and_checkpoint_are_deleted_then_the_orphan_is_detected(
    db: Path, public_key: Ed25519PublicKey
) -> None:
    _sql(db, "DELETE FROM events WHERE seq >= 9")
    assert _db_first_bad(db, public_key) == 9


def test_when_an_event_is_inserted_in_sqlite_then_it_is_detected(
    db: Path, public_key: Ed25519PublicKey
) -> None:
    _sql(db, "UPDATE events SET seq = seq + 100 WHERE seq >= 6")
    _sql(db, "UPDATE events SET seq = seq - 99 WHERE seq >= 106")
    _sql(db, "INSERT INTO events (seq, body, hash) SELECT 6, body, hash FROM events WHERE seq = 2")
    assert _db_first_bad(db, public_key) == 6


def test_when_events_are_swapped_in_sqlite_then_it_is_detected(
    db: Path, public_key: Ed25519PublicKey
) -> None:
    _sql(db, "UPDATE events SET seq = -1 WHERE seq = 6")
    _sql(db, "UPDATE events SET seq = 6 WHERE seq = 7")
    _sql(db, "UPDATE events SET seq = 7 WHERE seq = -1")
    assert _db_first_bad(db, public_key) == 6


def test_when_the_chain_is_rebuilt_in_sqlite_after_an_edit_then_a_checkpoint_catches_it(
    db: Path, public_key: Ed25519PublicKey
) -> None:
    conn = sqlite3.connect(db, isolation_level=None)
    rows = conn.execute("SELECT seq, body FROM events ORDER BY seq").fetchall()
    head = bytes(32)
    for seq, body in rows:
        event = json.loads(body)
        if seq == 2:
            event["status"] = "OK"
            event["organisation"] = "ops"
        new_body = canonical_bytes(event)
        head = next_hash(head, new_body)
        conn.execute(
            "UPDATE events SET body = ?, hash = ? WHERE seq = ?", (new_body.decode(), head, seq)
        )
    conn.close()
    assert _db_first_bad(db, public_key) == 1


def test_when_a_checkpoint_signature_is_altered_in_sqlite_then_it_is_detected(
    db: Path, public_key: Ed25519PublicKey
) -> None:
    _sql(db, "UPDATE checkpoints SET time = '2030-01-01T00:00:00.000Z' WHERE seq = 8")
    assert _db_first_bad(db, public_key) == 5


def test_when_a_body_is_not_canonical_then_it_is_detected(
    db: Path, public_key: Ed25519PublicKey
) -> None:
    _sql(db, "UPDATE events SET body = replace(body, ',', ', ') WHERE seq = 4")
    assert _db_first_bad(db, public_key) == 4


# -- a log that spans a rotation of the signing key ---------------------------------------------


@pytest.fixture
def rotated(tmp_path: Path, signer: Signer) -> tuple[Path, list[str], Signer]:
    """A log checkpointed under ``signer`` (seq 1-6), then under a new key after a rotation
    and restart (seq 7-12); returns the database, its export and the new signer."""
    from pseudogate.core.keyring import Keyring, Purpose

    ring = Keyring.generate()
    new = ring.signer(key_id=ring.add(Purpose.SIGNING).id)
    path = tmp_path / "audit.sqlite3"
    clock = StepClock()
    for key in (signer, new):
        with AuditLog.open(
            path, signer=key, clock=clock, checkpoint_every=4, checkpoint_seconds=0
        ) as log:
            for n in range(6):
                log.append(sample_event(n))
    with AuditLog.open(path, signer=new, clock=clock, checkpoint_seconds=0) as log:
        lines = [json.dumps(r, ensure_ascii=False) for r in log.records()]
    return path, lines, new


def _key(s: Signer) -> Ed25519PublicKey:
    from pseudogate.core.manifest import load_public_key_pem

    return load_public_key_pem(s.public_key_pem())


def test_when_the_log_spans_a_key_rotation_then_it_verifies_under_both_keys(
    rotated: tuple[Path, list[str], Signer], public_key: Ed25519PublicKey
) -> None:
    path, lines, new = rotated
    both = [public_key, _key(new)]
    assert verify_export(lines, both).last_seq == 12
    assert verify_export(lines, list(reversed(both))).checkpoints >= 3
    assert verify_database(path, both).events == 12


def test_when_a_key_of_a_rotated_log_is_missing_then_the_first_checkpoint_it_signed_fails(
    rotated: tuple[Path, list[str], Signer], public_key: Ed25519PublicKey
) -> None:
    path, lines, new = rotated
    assert _first_bad(lines, _key(new)) == 1  # the old key signed the checkpoint at seq 4
    with pytest.raises(AuditVerificationFailed, match="under the public key") as info:
        verify_export(lines, public_key)
    assert info.value.seq in (5, 7)  # the first checkpoint signed by the new key covers 5-6 or 7-8
    with pytest.raises(AuditVerificationFailed, match="any of the 2 public keys"):
        verify_database(path, [_key(new), _key(new)])


def test_when_no_public_key_is_given_then_verify_refuses(lines: list[str]) -> None:
    with pytest.raises(ValueError, match="at least one"):
        verify_export(lines, [])


def _change_event(status: str, **details: object) -> AuditEvent:
    from pseudogate.audit import build_event

    return build_event(
        organisation="ops", role="admin", method="/pseudogate.v1.AdminService/ImportOptOuts",
        status=status, details=details,
    )


def _export_of(tmp_path: Path, signer: Signer, events: list[AuditEvent]) -> list[str]:
    with AuditLog.open(
        tmp_path / "changes.sqlite3", signer=signer, clock=StepClock(), checkpoint_seconds=0
    ) as log:
        for event in events:
            log.append(event)
        return [json.dumps(r, ensure_ascii=False) for r in log.records()]


def test_when_a_follow_up_settles_an_earlier_change_then_the_export_verifies(
    tmp_path: Path, signer: Signer, public_key: Ed25519PublicKey
) -> None:
    change = "ab" * 16
    lines = _export_of(tmp_path, signer, [
        sample_event(1), _change_event("OK", change=change, snapshot=2),
        _change_event("ABORTED", change=change, reconciles=2),
    ])
    assert verify_export(lines, public_key).events == 3
    assert verify_database(tmp_path / "changes.sqlite3", public_key).events == 3


def test_when_a_follow_up_names_another_change_then_verification_names_it(
    tmp_path: Path, signer: Signer, public_key: Ed25519PublicKey
) -> None:
    lines = _export_of(tmp_path, signer, [
        _change_event("OK", change="ab" * 16, snapshot=2),
        _change_event("ABORTED", change="cd" * 16, reconciles=1),
    ])
    assert _first_bad(lines, public_key) == 2
    with pytest.raises(AuditVerificationFailed) as info:
        verify_database(tmp_path / "changes.sqlite3", public_key)
    assert info.value.seq == 2


def test_when_details_hold_free_text_with_a_rebuilt_chain_then_verification_refuses(
    tmp_path: Path, signer: Signer, public_key: Ed25519PublicKey
) -> None:
    """Someone with the signing key could chain anything; details still have a fixed shape."""
    lines = _export_of(tmp_path, signer, [sample_event(1)])
    record = json.loads(lines[0])
    del record["hash"]
    record["details"] = {"researcher": "Dr Jane Smith"}
    record["hash"] = next_hash(bytes(32), canonical_bytes(record)).hex()
    with pytest.raises(AuditVerificationFailed) as info:
        verify_export([json.dumps(record)], public_key)
    assert info.value.seq == 1 and "details" in info.value.reason
