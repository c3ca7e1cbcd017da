"""Audit log: append throughput (per RPC cost) and offline verification speed at 1,000,000 events.

Run: python -m benchmarks audit   (or python benchmarks/bench_audit.py)
"""

from __future__ import annotations

import json
import os
import platform
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path

from pseudogate.audit import (
    AuditEvent,
    AuditLog,
    build_event,
    canonical_bytes,
    make_checkpoint,
    next_hash,
    prepare_event,
    verify_database,
    verify_export,
)
from pseudogate.audit.chain import GENESIS_HASH
from pseudogate.audit.log import SCHEMA
from pseudogate.core.keyring import EXAMPLE_KEYRING, Keyring, Signer
from pseudogate.core.manifest import load_public_key_pem

APPEND_EVENTS = 5_000
THREADS = 4
VERIFY_EVENTS = 1_000_000
CHECKPOINT_EVERY = 1000


def _event(n: int) -> AuditEvent:
    return build_event(
        organisation="gp-denbigh",
        role="provider",
        method="/pseudogate.v1.TokenisationService/Tokenise",
        status="OK" if n % 10 else "PERMISSION_DENIED",
        dataset="gp_diagnoses",
        policy_fingerprint="3f" * 32,
        key_ids={"linkage": "lk-1"},
        counts={"values": 1000, "invalid": n % 7},
    )


def _append_rate(folder: Path, signer: Signer, *, synchronous: str, threads: int) -> float:
    path = folder / f"append-{synchronous}-{threads}.sqlite3"
    event = _event(1)
    per_thread = APPEND_EVENTS // threads
    with AuditLog.open(path, signer=signer, checkpoint_seconds=60, synchronous=synchronous) as log:
        def work() -> None:
            for _ in range(per_thread):
                log.append(event)

        workers = [threading.Thread(target=work) for _ in range(threads)]
        start = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        elapsed = time.perf_counter() - start
    return per_thread * threads / elapsed


def _generate(folder: Path, signer: Signer) -> tuple[Path, Path, float]:
    """An export file and a database of VERIFY_EVENTS events, built with the chain functions."""
    export = folder / "audit.jsonl"
    database = folder / "audit.sqlite3"
    conn = sqlite3.connect(database, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = OFF")
    conn.executescript(SCHEMA)
    conn.execute("BEGIN")
    head = GENESIS_HASH
    start = time.perf_counter()
    rows: list[tuple[int, str, bytes]] = []
    with export.open("w", encoding="utf-8") as out:
        for seq in range(1, VERIFY_EVENTS + 1):
            fields = prepare_event(_event(seq))  # what AuditLog.append records
            record = {"seq": seq, "time": "2025-06-01T09:00:00.000Z", **fields}
            body = canonical_bytes(record)
            head = next_hash(head, body)
            record["hash"] = head.hex()
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            rows.append((seq, body.decode("utf-8"), head))
            if seq % CHECKPOINT_EVERY == 0 or seq == VERIFY_EVENTS:
                checkpoint = make_checkpoint(seq, head, "2025-06-01T09:00:01.000Z", signer.sign)
                out.write(json.dumps(checkpoint) + "\n")
                conn.executemany("INSERT INTO events VALUES (?, ?, ?)", rows)
                rows.clear()
                conn.execute(
                    "INSERT INTO checkpoints VALUES (?, ?, ?, ?)",
                    (seq, checkpoint["hash"], checkpoint["time"], checkpoint["signature"]),
                )
    conn.execute("COMMIT")
    conn.close()
    return export, database, time.perf_counter() - start


def main() -> None:
    signer = Keyring.load(EXAMPLE_KEYRING).signer()
    public_key = load_public_key_pem(signer.public_key_pem())
    print(
        f"# Audit log ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {sys.version.split()[0]}, SQLite {sqlite3.sqlite_version})"
    )
    with tempfile.TemporaryDirectory(prefix="pseudogate-bench-audit-") as tmp:
        folder = Path(tmp)
        for synchronous in ("FULL", "NORMAL"):
            for threads in (1, THREADS):
                rate = _append_rate(folder, signer, synchronous=synchronous, threads=threads)
                print(
                    f"append, synchronous={synchronous:<6} {threads} thread(s): "
                    f"{rate:10,.0f} events/s ({1e6 / rate:7.1f} us/event)"
                )
        export, database, made = _generate(folder, signer)
        size = export.stat().st_size / 2**20
        print(f"generated {VERIFY_EVENTS:,} events ({size:,.0f} MiB export) in {made:.1f} s")

        start = time.perf_counter()
        with export.open(encoding="utf-8") as lines:
            report = verify_export(lines, public_key)
        elapsed = time.perf_counter() - start
        print(
            f"audit verify (export):   {report.events:,} events, {report.checkpoints:,} "
            f"checkpoints in {elapsed:.1f} s = {report.events / elapsed:10,.0f} events/s"
        )
        start = time.perf_counter()
        report = verify_database(database, public_key)
        elapsed = time.perf_counter() - start
        print(
            f"audit verify (database): {report.events:,} events, {report.checkpoints:,} "
            f"checkpoints in {elapsed:.1f} s = {report.events / elapsed:10,.0f} events/s"
        )


if __name__ == "__main__":
    main()
