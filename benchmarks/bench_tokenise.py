"""Tokenisation on one core: in-process, and the ``pseudogate tokenise`` CLI end to end.

In-process: 1,000,000 NHS numbers in mixed formats through the whole path a provider's file
takes (normalise, validate the check digit, HMAC, encode) beside a naive baseline in the same
run: pandas ``Series.map`` of ``hmac.digest(key, v.encode(), "sha256").hex()`` over the same
raw values (which neither normalises, validates, derives a per-domain key, nor truncates and
encodes a token).

End to end (``cli_main``): a generated CSV of 1,000,000 and 3,000,000 rows, ``pseudogate
tokenise`` as a user runs it (a fresh process: start-up, read, tokenise, write) against the
naive pipeline in a fresh process: ``pandas.read_csv(dtype=str)``, the same ``hmac`` digest
once per distinct value of the column, ``to_csv``. Runs are interleaved, each process pinned
to the same core; the wall time, CPU time and peak RSS of each child process are printed.

Run: python -m benchmarks tokenise   (or python benchmarks/bench_tokenise.py [ROWS ...])
"""

from __future__ import annotations

import csv
import gc
import hmac
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from pseudogate.core import normalise as normalise_module
from pseudogate.core._accel import fastmac
from pseudogate.core.columns import tokenise_column, tokenise_list
from pseudogate.core.keyring import EXAMPLE_KEYRING, Keyring
from pseudogate.core.normalise import Kind, normalise_many

N = 1_000_000
RUNS = 3
TARGET_IDS_PER_S = 1_000_000
TARGET_RATIO = 2.0
CLI_ROWS = (1_000_000, 3_000_000)
CLI_RUNS = 3
CLI_TARGET_RATIO = 4.0
PEOPLE_PER_ROW = 0.25  # a provider's file repeats people (several records each)

NAIVE_PIPELINE = """
import hmac, sys
import pandas as pd
src, dst, key = sys.argv[1], sys.argv[2], bytes.fromhex(sys.argv[3])
table = pd.read_csv(src, dtype=str, keep_default_na=False)
column = table["nhs_number"]
distinct = column.unique()
digests = dict(zip(distinct, (hmac.digest(key, v.encode(), "sha256").hex() for v in distinct)))
table["nhs_number"] = column.map(digests)
table.to_csv(dst, index=False)
"""


def mixed_nhs_numbers(n: int, *, seed: int = 20261126) -> list[str]:
    """Valid NHS numbers as providers type them: plain, spaced 3-3-4, hyphenated, padded with
    spaces or tabs, and (1 in 50) with no-break spaces."""
    rng = np.random.default_rng(seed)
    digits = rng.integers(0, 10, size=(int(n * 1.2), 9))
    check = 11 - (digits @ np.arange(10, 1, -1)) % 11
    check[check == 11] = 0
    keep = check != 10
    numbers = np.concatenate([digits[keep], check[keep, None]], axis=1)[:n]
    plain = ["".join(map(str, row)) for row in numbers.tolist()]
    styles = rng.integers(0, 50, size=n).tolist()
    out: list[str] = []
    for s, style in zip(plain, styles, strict=True):
        kind = style % 5
        if style == 49:
            out.append(f"{s[:3]}\u00a0{s[3:6]}\u00a0{s[6:]}")
        elif kind == 0:
            out.append(s)
        elif kind == 1:
            out.append(f"{s[:3]} {s[3:6]} {s[6:]}")
        elif kind == 2:
            out.append(f"{s[:3]}-{s[3:6]}-{s[6:]}")
        elif kind == 3:
            out.append(f" {s}\t")
        else:
            out.append(f"  {s[:3]} {s[3:6]} {s[6:]} ")
    return out


def _time(fn: Callable[[], object], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        gc.collect()
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
        del result
    return times


def main(argv: list[str] | None = None) -> int:
    in_process_main(argv)
    cli_main(argv)
    return 0


def in_process_main(argv: list[str] | None = None) -> int:
    n = int(argv[0]) if argv else N
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, as the target says
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    backend = fastmac.sha256_backend() if fastmac is not None else "none (pure Python)"
    print(f"C accelerator: {'built' if fastmac is not None else 'absent'}; SHA-256: {backend}")
    values = mixed_nhs_numbers(n)
    tokeniser = Keyring.load(EXAMPLE_KEYRING).linkage_tokeniser("nhs_number")

    def in_process() -> list[str]:
        normalised, errors = normalise_many(Kind.NHS_NUMBER, values)
        assert not errors
        return tokeniser.tokens(normalised)  # type: ignore[arg-type]

    def pure_python() -> list[str]:
        normalised, errors = normalise_module._nhs_many_python(values)
        assert not errors
        return tokeniser._tokens_python(normalised)  # type: ignore[arg-type]

    array = pa.array(values, type=pa.string())

    def list_pipeline() -> list[str]:
        done = tokenise_list(values, kind=Kind.NHS_NUMBER, tokeniser=tokeniser)
        assert not done.errors
        return done.tokens

    def arrow_pipeline() -> pa.Array:
        done = tokenise_column(array, kind=Kind.NHS_NUMBER, tokeniser=tokeniser)
        assert not done.errors
        return done.tokens

    key = os.urandom(32)
    series = pd.Series(values)

    def naive() -> pd.Series:
        return series.map(lambda v: hmac.digest(key, v.encode(), "sha256").hex())

    assert in_process() == pure_python()  # the fast path computes exactly the same tokens
    assert list_pipeline() == arrow_pipeline().to_pylist() == in_process()
    results = {
        "in-process (normalise+validate+HMAC+encode)": _time(in_process, RUNS),
        "column pipeline, Python list (Tokenise RPC)": _time(list_pipeline, RUNS),
        "column pipeline, Arrow array (submissions)": _time(arrow_pipeline, RUNS),
        "pure-Python fallback (same work, no C)": _time(pure_python, 1),
        "naive baseline (pandas .map hmac.hexdigest)": _time(naive, RUNS),
    }
    rates = {}
    print(f"{n:,} NHS numbers in mixed formats, best of {RUNS} runs (median in brackets):")
    for name, times in results.items():
        best, median = n / min(times), n / statistics.median(times)
        rates[name] = best
        print(f"  {name:<46} {best:>12,.0f} ids/s  ({median:,.0f})")
    fast = rates["in-process (normalise+validate+HMAC+encode)"]
    baseline = rates["naive baseline (pandas .map hmac.hexdigest)"]
    ratio = fast / baseline
    print(
        f"  target >= {TARGET_IDS_PER_S:,} ids/s: {'met' if fast >= TARGET_IDS_PER_S else 'NOT met'};"
        f" vs naive baseline {ratio:.1f}x (target >= {TARGET_RATIO:.0f}x): "
        f"{'met' if ratio >= TARGET_RATIO else 'NOT met'}"
    )
    return 0


def write_provider_csv(path: Path, rows: int, *, seed: int = 20261201) -> None:
    """A GP-style file: id, NHS number (mixed formats, people repeat), name, date of birth,
    postcode, free-text notes (some with commas, quotes and line breaks), written with csv."""
    rng = np.random.default_rng(seed)
    people = max(int(rows * PEOPLE_PER_ROW), 1)
    nhs = mixed_nhs_numbers(people, seed=seed)
    who = rng.integers(0, people, size=rows).tolist()
    names = ["Siân O'Brien", "José Álvarez", "Ann Smith", "Zoë Li", "Bob Jones", "Smith, John"]
    notes = ["", "", "", "seen", 'said "fine"', "a, b", "two\nlines", "follow-up 0012"]
    name_i = rng.integers(0, len(names), size=rows).tolist()
    note_i = rng.integers(0, len(notes), size=rows).tolist()
    days = rng.integers(0, 36_500, size=rows)
    dob = (np.datetime64("1925-01-01") + days).astype(str).tolist()
    district = rng.integers(1, 30, size=rows).tolist()
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["id", "nhs_number", "name", "date_of_birth", "postcode", "notes"])
        for i in range(rows):
            w.writerow([f"{i:08d}", nhs[who[i]], names[name_i[i]], dob[i],
                        f"LS{district[i]} {i % 10}AB", notes[note_i[i]]])


# Runs the command and reports its wall time, CPU time and peak RSS. It is a small process of its
# own because a child's peak RSS counts the copy of its parent made by fork (here the benchmark
# process, large after generating the file): the command is forked from this small one instead.
_MEASURE = """
import os, subprocess, sys, time
start = time.perf_counter()
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
_, status, usage = os.wait4(proc.pid, 0)
print(time.perf_counter() - start, usage.ru_utime + usage.ru_stime, usage.ru_maxrss)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def _run_child(argv: list[str]) -> tuple[float, float, int]:
    """(wall s, CPU s, peak RSS KiB) of one run of ``argv`` (see ``_MEASURE``)."""
    done = subprocess.run([sys.executable, "-c", _MEASURE, *argv], capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{argv[:4]} failed: {done.stderr[-500:]}")
    wall, cpu, rss = done.stdout.split()
    return float(wall), float(cpu), int(rss)


def cli_main(argv: list[str] | None = None) -> int:
    """``pseudogate tokenise`` end to end against the naive pandas pipeline (see the docstring)."""
    sizes = [int(a) for a in argv] if argv else list(CLI_ROWS)
    core = min(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 0
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {core})  # children inherit it: both pipelines on one core
    keyring = Path(EXAMPLE_KEYRING)
    print(f"pseudogate tokenise end to end vs naive pandas pipeline; each process on core "
          f"{core}; median of {CLI_RUNS} interleaved runs")
    with tempfile.TemporaryDirectory(prefix="bench-tokenise-") as tmp:
        folder = Path(tmp)
        for rows in sizes:
            src = folder / "in.csv"
            write_provider_csv(src, rows)
            mib = src.stat().st_size / 2**20
            cli = [sys.executable, "-m", "pseudogate", "tokenise", "--keyring", str(keyring),
                   "--domain", "nhs_number", "--column", "nhs_number",
                   "--input", str(src), "--output", str(folder / "cli.csv")]
            naive = [sys.executable, "-c", NAIVE_PIPELINE, str(src), str(folder / "naive.csv"),
                     os.urandom(32).hex()]
            runs: dict[str, list[tuple[float, float, int]]] = {"cli": [], "naive": []}
            for i in range(CLI_RUNS):
                order = ("cli", "naive") if i % 2 == 0 else ("naive", "cli")
                for name in order:
                    runs[name].append(_run_child(cli if name == "cli" else naive))
            print(f"  {rows:,} rows ({mib:,.0f} MiB of CSV):")
            for name, label in (("cli", "pseudogate tokenise"), ("naive", "naive pipeline")):
                wall = statistics.median(r[0] for r in runs[name])
                cpu = statistics.median(r[1] for r in runs[name])
                rss = max(r[2] for r in runs[name])
                print(f"    {label:<20} {wall:6.2f} s wall ({', '.join(f'{r[0]:.2f}' for r in runs[name])}),"
                      f" {cpu:6.2f} s CPU, {rows / wall:>10,.0f} rows/s, peak RSS {rss / 1024:,.0f} MiB")
            ratio = statistics.median(r[0] for r in runs["naive"]) / statistics.median(
                r[0] for r in runs["cli"])
            cpu_ratio = statistics.median(r[1] for r in runs["naive"]) / statistics.median(
                r[1] for r in runs["cli"])
            print(f"    speed-up {ratio:.1f}x wall, {cpu_ratio:.1f}x CPU (target >= "
                  f"{CLI_TARGET_RATIO:.0f}x): {'met' if ratio >= CLI_TARGET_RATIO else 'NOT met'}")
            for f in folder.iterdir():
                f.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
