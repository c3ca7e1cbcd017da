"""``pseudogate demo``: the whole story end to end on embedded defaults."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pseudogate.cli._common import EXAMPLE_KEYS_WARNING, warn


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("demo", help="run the end-to-end demonstration")
    p.add_argument(
        "--out",
        type=Path,
        default=Path("demo-output"),
        help="folder for the demo's data directory, policies and extract (emptied first)",
    )
    p.add_argument("--population", type=int, default=3_000, help="synthetic people (default 3000)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from pseudogate.tools.demo import run_demo

    warn(EXAMPLE_KEYS_WARNING)

    return run_demo(workdir=args.out, population=args.population)
