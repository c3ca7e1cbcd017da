"""Encoding speed: pg-fbf-v1 records per second on one core (docs/performance.md).

100,000 synthetic people (benchmarks/_people.py: Zipf-distributed names, three date formats,
near-unique postcodes, some missing fields) through ``Encoder.encode`` (normalise, HMAC
features, blocking keys), ``Encoder.seal`` (AES-256-GCM, one random nonce per record) and
``Encoder.open``. Each stage is timed three times with a fresh encoder (empty q-gram cache);
the best CPU time (``time.process_time``) and its wall time are printed. The target is
100,000 records/s for encode + seal.

Run: python -m benchmarks encoding   (or python benchmarks/bench_encoding.py [N])
"""

from __future__ import annotations

import platform
import sys
import time

from benchmarks._people import people
from pseudogate.core._accel import fastmac
from pseudogate.core.encoding import RECORD_BYTES, derive_encoder

N = 100_000
RUNS = 3
TARGET = 100_000


def main(n: int = N) -> None:
    cols = people(n, seed=7)
    print(
        f"pg-fbf-v1 encoding of {n:,} records ({RECORD_BYTES} bytes each; sealed: + 2 + key id "
        "+ 12 nonce + 16 tag); "
        f"Python {platform.python_version()}, C accelerator: {fastmac is not None}"
    )
    best: dict[str, tuple[float, float]] = {}
    for run in range(RUNS):
        encoder = derive_encoder(key_id="bench-key", material=bytes([run]) * 32)
        stages = []
        c0, w0 = time.process_time(), time.perf_counter()
        encoded = encoder.encode(cols)
        c1, w1 = time.process_time(), time.perf_counter()
        sealed = encoder.seal(encoded)
        c2, w2 = time.process_time(), time.perf_counter()
        opened = encoder.open(sealed)
        c3, w3 = time.process_time(), time.perf_counter()
        assert opened.records.tobytes() == encoded.records.tobytes()
        stages = [
            ("encode", c1 - c0, w1 - w0),
            ("seal", c2 - c1, w2 - w1),
            ("encode + seal", c2 - c0, w2 - w0),
            ("open", c3 - c2, w3 - w2),
        ]
        for name, cpu, wall in stages:
            if name not in best or cpu < best[name][0]:
                best[name] = (cpu, wall)
    for name, (cpu, wall) in best.items():
        print(
            f"  {name:<14} {n / cpu:>11,.0f} records/s CPU   ({cpu:6.2f} s CPU, {wall:6.2f} s wall)"
        )
    rate = n / best["encode + seal"][0]
    verdict = "meets" if rate >= TARGET else "misses"
    print(f"  encode + seal {rate:,.0f} records/s: {verdict} the {TARGET:,}/s target")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else N)
