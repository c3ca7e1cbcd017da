"""``pseudogate demo``: the whole story end to end on embedded defaults."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("demo", help="run the end-to-end demonstration")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from pseudogate.demo import run_demo

    return run_demo()
