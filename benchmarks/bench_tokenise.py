"""In-process tokenisation: 1,000,000 NHS numbers in mixed formats -> tokens, on one core.

Measures the whole path a provider's file takes (normalise, validate the check digit, HMAC,
encode) beside a naive baseline in the same run: pandas ``Series.map`` of
``hmac.digest(key, v.encode(), "sha256").hex()`` over the same raw values (which neither
normalises, validates, derives a per-domain key, nor truncates and encodes a token).
Run: python -m benchmarks tokenise   (or python benchmarks/bench_tokenise.py)
"""

from __future__ import annotations

import gc
import hmac
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable

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


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
