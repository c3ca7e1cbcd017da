"""AuditLog: sequencing, checkpoints, concurrency, fail-closed writes."""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from pseudogate.audit import AuditLog, verify_database, verify_export
from pseudogate.core.errors import InvalidInput, StorageFull, Unavailable
from pseudogate.core.keyring import Signer

from .conftest import StepClock, sample_event

OpenLog = Callable[..., AuditLog]


def _kinds(records: list[dict]) -> list[str]:
    return [("C" if "signature" in r else "E") + str(r["seq"]) for r in records]


def test_when_events_are_appended_then_they_get_consecutive_seq_time_and_hash(
    open_log: OpenLog,
) -> None:
    log = open_log()
    first = log.append(sample_event(1))
    second = log.append(sample_event(2))
    assert (first["seq"], second["seq"]) == (1, 2)
    assert first["time"] == "2025-06-01T09:00:00.001Z"
    assert len(first["hash"]) == 64 and first["hash"] == first["hash"].lower()
    assert log.head() == (2, bytes.fromhex(second["hash"]))


def test_when_an_event_has_a_malformed_field_then_append_refuses_it(open_log: OpenLog) -> None:
    log = open_log()
    with pytest.raises(InvalidInput):
        log.append(replace(sample_event(), counts={"nhs 9434765919": 1}))
    assert log.head()[0] == 0


def test_when_records_are_listed_then_checkpoints_follow_the_events_they_cover(
    open_log: OpenLog, public_key: Ed25519PublicKey
) -> None:
    log = open_log(checkpoint_every=3)
    for n in range(7):
        log.append(sample_event(n))
    records = list(log.records())
    assert _kinds(records) == ["E1", "E2", "E3", "C3", "E4", "E5", "E6", "C6", "E7", "C7"]
    assert all("signature" not in r for r in records if "status" in r)
    report = verify_export([json.dumps(r) for r in records], public_key)
    assert (report.events, report.checkpoints, report.last_seq) == (7, 3, 7)


def test_when_the_head_is_already_checkpointed_then_the_export_ends_with_one_fresh_checkpoint(
    open_log: OpenLog,
) -> None:
    log = open_log(checkpoint_every=3)
    for n in range(3):
        log.append(sample_event(n))
    records = list(log.records())
    assert _kinds(records) == ["E1", "E2", "E3", "C3"]


def test_when_listing_from_a_seq_then_earlier_events_are_left_out(open_log: OpenLog) -> None:
    log = open_log(checkpoint_every=2)
    for n in range(5):
        log.append(sample_event(n))
    assert _kinds(list(log.records(from_seq=3))) == ["E3", "E4", "C4", "E5", "C5"]


def test_when_the_log_is_empty_then_the_export_is_a_genesis_checkpoint(
    open_log: OpenLog, public_key: Ed25519PublicKey
) -> None:
    records = list(open_log().records())
    assert _kinds(records) == ["C0"]
    assert records[0]["hash"] == "0" * 64
    assert verify_export([json.dumps(r) for r in records], public_key).events == 0


def test_when_checkpoint_is_requested_then_the_head_is_signed_and_stored(
    open_log: OpenLog, tmp_path: Path, public_key: Ed25519PublicKey
) -> None:
    log = open_log()
    log.append(sample_event())
    checkpoint = log.checkpoint()
    assert set(checkpoint) == {"seq", "hash", "time", "signature"}
    assert checkpoint["seq"] == 1
    assert verify_database(tmp_path / "audit.sqlite3", public_key).checkpoints == 1


def test_when_closed_with_new_events_then_a_shutdown_checkpoint_is_stored(
    tmp_path: Path, signer: Signer, public_key: Ed25519PublicKey
) -> None:
    path = tmp_path / "audit.sqlite3"
    log = AuditLog.open(path, signer=signer, checkpoint_seconds=0)
    for n in range(4):
        log.append(sample_event(n))
    before = verify_database(path, public_key)
    log.close()
    after = verify_database(path, public_key)
    assert (before.unsigned_events, before.checkpoints) == (4, 0)
    assert (after.unsigned_events, after.checkpoints) == (0, 1)


def test_when_closed_without_new_events_then_no_checkpoint_is_added(
    tmp_path: Path, signer: Signer, public_key: Ed25519PublicKey
) -> None:
    path = tmp_path / "audit.sqlite3"
    log = AuditLog.open(path, signer=signer, checkpoint_seconds=0, checkpoint_every=2)
    log.append(sample_event())
    log.append(sample_event())
    log.close()
    log.close()  # idempotent
    assert verify_database(path, public_key).checkpoints == 1


def test_when_time_passes_with_new_events_then_the_timer_checkpoints(
    open_log: OpenLog, tmp_path: Path, public_key: Ed25519PublicKey
) -> None:
    log = open_log(checkpoint_seconds=0.05)
    log.append(sample_event())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if verify_database(tmp_path / "audit.sqlite3", public_key).checkpoints:
            break
        time.sleep(0.02)
    report = verify_database(tmp_path / "audit.sqlite3", public_key)
    assert (report.checkpoints, report.unsigned_events) == (1, 0)
    time.sleep(0.2)  # no new events: no further checkpoints
    assert verify_database(tmp_path / "audit.sqlite3", public_key).checkpoints == 1


def test_when_closed_then_the_timer_thread_stops(open_log: OpenLog) -> None:
    log = open_log(checkpoint_seconds=30)
    timer = log._timer
    assert timer is not None and timer.is_alive()
    log.close()
    assert not timer.is_alive()


def test_when_reopened_then_the_chain_continues(
    tmp_path: Path, signer: Signer, public_key: Ed25519PublicKey
) -> None:
    path = tmp_path / "audit.sqlite3"
    with AuditLog.open(path, signer=signer, checkpoint_seconds=0) as log:
        log.append(sample_event())
    with AuditLog.open(path, signer=signer, checkpoint_seconds=0) as log:
        assert log.append(sample_event())["seq"] == 2
        records = list(log.records())
    assert verify_export([json.dumps(r) for r in records], public_key).last_seq == 2


def test_when_many_threads_append_at_once_then_the_chain_is_complete_and_valid(
    tmp_path: Path, signer: Signer, public_key: Ed25519PublicKey
) -> None:
    path = tmp_path / "audit.sqlite3"
    log = AuditLog.open(path, signer=signer, checkpoint_every=50, checkpoint_seconds=0.01,
                        synchronous="NORMAL")
    seqs: list[int] = []
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        for n in range(100):
            seqs.append(log.append(sample_event(n))["seq"])

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()
    assert sorted(seqs) == list(range(1, 801))
    report = verify_database(path, public_key)
    assert (report.events, report.unsigned_events) == (800, 0)
    assert report.checkpoints >= 16


def test_when_the_database_is_locked_past_the_timeout_then_append_fails_closed(
    open_log: OpenLog, tmp_path: Path
) -> None:
    log = open_log(write_timeout=0.2)
    log.append(sample_event())
    blocker = sqlite3.connect(tmp_path / "audit.sqlite3", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(Unavailable, match="could not be written"):
            log.append(sample_event())
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert log.head()[0] == 1
    assert log.append(sample_event())["seq"] == 2  # recovers once the lock is gone


def test_when_the_disk_is_full_then_append_fails_closed_and_nothing_is_written(
    open_log: OpenLog, tmp_path: Path, public_key: Ed25519PublicKey,
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = open_log()
    log.append(sample_event())
    pages = log._conn.execute("PRAGMA page_count").fetchone()[0]
    log._conn.execute(f"PRAGMA max_page_count = {pages}")  # SQLite's own "disk full"
    with caplog.at_level(logging.ERROR), pytest.raises(StorageFull):
        for n in range(10_000):
            log.append(sample_event(n))
    assert f"storage full: cannot write {tmp_path / 'audit.sqlite3'}" in caplog.text
    seq, _ = log.head()
    assert verify_database(tmp_path / "audit.sqlite3", public_key).events == seq
    log._conn.execute("PRAGMA max_page_count = 1073741823")  # room again: the chain goes on
    assert log.append(sample_event())["seq"] == seq + 1


def test_when_the_log_is_closed_then_append_is_unavailable(open_log: OpenLog) -> None:
    log = open_log()
    log.close()
    with pytest.raises(Unavailable, match="closed"):
        log.append(sample_event())


def test_when_the_path_cannot_be_a_database_then_open_is_unavailable(
    tmp_path: Path, signer: Signer
) -> None:
    folder = tmp_path / "a-directory"
    folder.mkdir()
    with pytest.raises(Unavailable):
        AuditLog.open(folder, signer=signer, checkpoint_seconds=0)


def test_when_the_clock_is_injected_then_event_and_checkpoint_times_use_it(
    open_log: OpenLog, clock: StepClock
) -> None:
    log = open_log()
    event = log.append(sample_event())
    checkpoint = log.checkpoint()
    assert event["time"] == "2025-06-01T09:00:00.001Z"
    assert checkpoint["time"] == "2025-06-01T09:00:00.002Z"


def test_when_a_raw_event_names_a_malformed_dataset_then_it_is_logged_as_null(
    open_log: OpenLog, tmp_path: Path
) -> None:
    log = open_log()
    event = replace(sample_event(), dataset="Jane Smith 9434765919", project="a b")
    record = log.append(event)
    assert (record["dataset"], record["project"]) == (None, None)
    log.close()
    raw = (tmp_path / "audit.sqlite3").read_bytes()
    assert b"9434765919" not in raw and b"Jane" not in raw


def test_when_the_caller_is_unidentified_then_organisation_and_role_may_be_empty(
    open_log: OpenLog,
) -> None:
    log = open_log()
    record = log.append(replace(sample_event(status="PERMISSION_DENIED"), organisation="", role=""))
    assert record["organisation"] == ""


def test_when_events_are_appended_during_an_export_then_the_export_is_a_consistent_snapshot(
    open_log: OpenLog, public_key: Ed25519PublicKey
) -> None:
    log = open_log(checkpoint_every=10)
    for n in range(50):
        log.append(sample_event(n))
    records = log.records()
    first = [next(records) for _ in range(5)]
    stop = threading.Event()

    def writer() -> None:
        while not stop.is_set():
            log.append(sample_event())

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        rest = list(records)
    finally:
        stop.set()
        thread.join()
    lines = [json.dumps(r) for r in first + rest]
    report = verify_export(lines, public_key)
    assert report.last_seq == 50
    assert log.head()[0] > 50


def test_when_concurrent_appends_meet_a_locked_database_then_every_one_fails_closed(
    open_log: OpenLog, tmp_path: Path
) -> None:
    log = open_log(write_timeout=0.3)
    log.append(sample_event())
    blocker = sqlite3.connect(tmp_path / "audit.sqlite3", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    outcomes: list[str] = []

    def worker(n: int) -> None:
        try:
            log.append(sample_event(n))
            outcomes.append("written")
        except Unavailable:
            outcomes.append("refused")

    try:
        threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert outcomes == ["refused"] * 6
    assert log.head()[0] == 1
    records = [log.append(sample_event(n)) for n in range(3)]
    assert [r["seq"] for r in records] == [2, 3, 4]
    with sqlite3.connect(tmp_path / "audit.sqlite3") as db:
        stored = dict(db.execute("SELECT seq, hash FROM events"))
    assert all(bytes(stored[r["seq"]]).hex() == r["hash"] for r in records)
