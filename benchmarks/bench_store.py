"""Store: submission of 1,000,000 records (records/s) and an extract of 1,000,000 linked records.

Core path, no transport: Arrow IPC messages (at most 32 MiB each, built beforehand as a client
would) go through ``Submission.add_arrow_ipc`` → ``prepare`` → ``commit``; the extract is
``Store.build_extract`` (join, opt-outs, project tokens, k-anonymity, content hash, signature)
plus serialising it as Arrow IPC messages. Targets on 2 cores: submission ≥ 500,000 records/s,
extract < 15 s.

Run: python -m benchmarks store   (or python benchmarks/bench_store.py)
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa

from pseudogate.core.arrow_ipc import ipc_stream_bytes
from pseudogate.core.keyring import Keyring
from pseudogate.core.policy import parse_policy
from pseudogate.gateway import Store

RECORDS = 1_000_000
ROWS_PER_MESSAGE = 200_000
SEED = 20250601

GP_POLICY = """\
version: 1
name: gp-ingest
columns:
  nhs_number:    {action: tokenise, kind: nhs_number, domain: person}
  given_name:    {action: drop}
  family_name:   {action: drop}
  date_of_birth: {action: keep}
  sex:           {action: keep}
  diagnosis:     {action: keep}
  event_date:    {action: keep}
"""

COUNCIL_POLICY = """\
version: 1
name: council-ingest
columns:
  nhs:        {action: tokenise, kind: nhs_number, domain: person}
  full_name:  {action: drop}
  service:    {action: keep}
"""

EXTRACT_POLICY = """\
version: 1
name: bench-extract
columns:
  person:                     {action: keep}
  gp_diagnoses.date_of_birth: {action: generalise, hierarchy: {type: date, levels: [year, 5y, 10y]}}
  gp_diagnoses.sex:           {action: generalise, hierarchy: {type: suppress}}
  gp_diagnoses.diagnosis:     {action: keep, sensitive: true}
  gp_diagnoses.event_date:    {action: drop}
  social_care.service:        {action: keep}
privacy:
  k: 5
  l: 2
  suppression_limit: 0.05
"""

_GIVEN = np.array(["Siân", "Gareth", "Rhiannon", "Zoë", "José", "Aoife", "Priya", "Kwame"])
_FAMILY = np.array(["O'Brien", "Jones", "Ødegård", "Patel", "Nowak", "Chen", "García", "Price"])


def _nhs_numbers(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` distinct valid NHS numbers in the 999 test range (never issued to anyone)."""
    body = rng.permutation(1_000_000)  # the six digits after 999
    digits = np.zeros((1_000_000, 9), dtype=np.int64)
    digits[:, :3] = 9
    for i in range(6):
        digits[:, 3 + i] = body // 10 ** (5 - i) % 10
    check = 11 - (digits @ np.arange(10, 1, -1)) % 11
    check[check == 11] = 0
    valid = check != 10
    if valid.sum() < n:
        raise ValueError(f"the 999 range holds only {valid.sum()} valid numbers")
    numbers = np.char.add(np.char.zfill((999_000_000 + body[valid]).astype(str), 9),
                          check[valid].astype(str))
    return numbers[:n]


def _dates(rng: np.random.Generator, n: int, start: str, end: str) -> np.ndarray:
    first, last = np.datetime64(start), np.datetime64(end)
    days = rng.integers(0, int((last - first).astype(int)), n)
    return (first + days).astype(str)


def _ipc_messages(table: pa.Table) -> list[bytes]:
    messages = []
    for start in range(0, table.num_rows, ROWS_PER_MESSAGE):
        messages.append(ipc_stream_bytes(table.slice(start, ROWS_PER_MESSAGE)))
    assert max(map(len, messages)) <= 32 * 1024 * 1024
    return messages


def gp_table(rng: np.random.Generator, *, records: int, people: int) -> tuple[pa.Table, np.ndarray]:
    """GP records for ``people`` people (each at least once); 10% of numbers typed with spaces."""
    numbers = _nhs_numbers(rng, people)
    who = np.concatenate([np.arange(people), rng.integers(0, people, records - people)])
    rng.shuffle(who)
    nhs = [f"{s[:3]} {s[3:6]} {s[6:]}" if typed else s
           for s, typed in zip(numbers[who].tolist(), (rng.random(records) < 0.10).tolist(),
                               strict=True)]
    dob_of_person = _dates(rng, people, "1930-01-01", "2010-12-31")
    sex_of_person = rng.choice(np.array(["F", "M"]), people)
    table = pa.table({
        "nhs_number": pa.array(nhs, pa.string()),
        "given_name": pa.array(rng.choice(_GIVEN, records).tolist(), pa.string()),
        "family_name": pa.array(rng.choice(_FAMILY, records).tolist(), pa.string()),
        "date_of_birth": pa.array(dob_of_person[who].tolist(), pa.string()),
        "sex": pa.array(sex_of_person[who].tolist(), pa.string()),
        "diagnosis": pa.array(np.char.add("D", rng.integers(0, 40, records).astype(str)).tolist(),
                              pa.string()),
        "event_date": pa.array(_dates(rng, records, "2015-01-01", "2025-01-01").tolist(),
                               pa.string()),
    })
    return table, numbers


def council_table(rng: np.random.Generator, numbers: np.ndarray) -> pa.Table:
    return pa.table({
        "nhs": pa.array(numbers.tolist(), pa.string()),
        "full_name": pa.array(rng.choice(_GIVEN, len(numbers)).tolist(), pa.string()),
        "service": pa.array(rng.choice(np.array(["home care", "respite", "day centre"]),
                                       len(numbers)).tolist(), pa.string()),
    })


def _store(folder: Path) -> Store:
    policies = {"gp": parse_policy(GP_POLICY), "council": parse_policy(COUNCIL_POLICY)}
    return Store.open(folder, keyring=Keyring.generate(), policies=policies,
                      clock=lambda: datetime(2025, 6, 1, tzinfo=UTC))


def _submit(
    store: Store, dataset: str, policy: str, messages: list[bytes]
) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds of this process, rows) of one submission."""
    start, cpu = time.perf_counter(), time.process_time()
    sub = store.begin_submission(dataset=dataset, policy_name=policy, organisation="bench")
    for message in messages:
        sub.add_arrow_ipc(message)
    sub.prepare()
    result = sub.commit()
    return time.perf_counter() - start, time.process_time() - cpu, result.rows


def main() -> None:
    print(f"store benchmark: Python {platform.python_version()}, {os.cpu_count()} CPUs, "
          f"{platform.machine()}")
    rng = np.random.default_rng(SEED)
    with tempfile.TemporaryDirectory() as tmp:
        for people in (250_000, 900_000):
            table, numbers = gp_table(rng, records=RECORDS, people=people)
            messages = _ipc_messages(table)
            store = _store(Path(tmp) / f"submit-{people}")
            seconds, cpu, rows = _submit(store, "gp_diagnoses", "gp", messages)
            print(f"  submission: {rows:,} records of {people:,} people (10% NHS numbers with "
                  f"spaces), {len(messages)} messages: {seconds:.2f} s = {rows / seconds:,.0f} "
                  f"records/s (CPU {cpu:.2f} s)")

        # Extract: 1,000,000 GP records of 250,000 people, joined with one council row for
        # each of 200,000 of them; 5,000 opted out.
        table, numbers = gp_table(rng, records=RECORDS, people=250_000)
        store = _store(Path(tmp) / "extract")
        _submit(store, "gp_diagnoses", "gp", _ipc_messages(table))
        _submit(store, "social_care", "council", _ipc_messages(council_table(rng, numbers[:200_000])))
        store.import_optouts(numbers[-5_000:].tolist())
        store.create_project(title="Benchmark", purpose="Timing extracts.",
                             legal_basis="Not applicable: synthetic data",
                             public_benefit="A faster gateway.", project_id="bench", researcher="uni",
                             datasets=["gp_diagnoses", "social_care"],
                             policy_text=EXTRACT_POLICY, policy_files={}, expires="2025-12-31")
        start, cpu = time.perf_counter(), time.process_time()
        extract = store.build_extract("bench", organisation="uni")
        built = time.perf_counter() - start
        sent = sum(len(m) for m in extract.iter_arrow_ipc())
        total, cpu = time.perf_counter() - start, time.process_time() - cpu
        m = extract.manifest
        print(f"  extract: {RECORDS:,} linked records in, {m.rows:,} rows out "
              f"(k={m.k_achieved}, l={m.l_achieved}, suppressed {m.suppressed:,}, "
              f"opt-outs removed {m.optouts_removed}): built and signed in {built:.2f} s, "
              f"with Arrow IPC serialisation ({sent / 2**20:.0f} MiB) {total:.2f} s (CPU {cpu:.2f} s)")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
