"""``python -m benchmarks [NAME ...] [--OPTION ...]``: run every ``bench_*.py`` module (or the
named ones). Options (from the first argument starting with ``--``) go to the one named
benchmark, e.g. ``python -m benchmarks linkage --scale 1000000 --scale-only``."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path


def available() -> list[str]:
    return sorted(p.stem.removeprefix("bench_") for p in Path(__file__).parent.glob("bench_*.py"))


def main(argv: list[str]) -> int:
    at = next((i for i, a in enumerate(argv) if a.startswith("--")), len(argv))
    argv, options = argv[:at], argv[at:]
    if options and len(argv) != 1:
        print("options go to exactly one named benchmark", file=sys.stderr)
        return 2
    names = argv or available()
    unknown = [n for n in names if n not in available()]
    if unknown:
        print(f"unknown benchmark(s) {unknown}; available: {available()}", file=sys.stderr)
        return 2
    for name in names:
        print(f"== benchmarks.bench_{name}", flush=True)
        module = importlib.import_module(f"benchmarks.bench_{name}")
        if options:
            module.main(options)
        else:
            module.main()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
