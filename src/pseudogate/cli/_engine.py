"""``--engine local|dask``, ``--scheduler`` and ``--worker-memory``: shared by batch commands."""

from __future__ import annotations

import argparse
import contextlib
import enum
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pseudogate.batch.runner import InProcess, Runner
from pseudogate.cli._common import fail

__all__ = ["Engine", "add_engine_arguments", "check_engine_arguments", "is_parquet_input", "runner_for"]

_MEMORY = re.compile(r"\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)?", re.IGNORECASE)


class Engine(enum.StrEnum):
    LOCAL = "local"  # this process
    DASK = "dask"  # the workers of a Dask cluster


def add_engine_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--engine", choices=[e.value for e in Engine], default=Engine.LOCAL.value,
                   help="where the work runs: this process (default) or a Dask cluster")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="Dask scheduler (tls://HOST:PORT; tcp:// on this machine only); "
                   "without it --engine dask starts a LocalCluster on this machine")
    p.add_argument("--worker-memory", metavar="SIZE",
                   help="memory limit of each LocalCluster worker, e.g. 4GiB "
                   "(default: an equal share of this machine's memory)")


def is_parquet_input(path: Path) -> bool:
    text = str(path)
    return path.is_dir() or text.endswith(".parquet") or any(ch in text for ch in "*?[")


def check_engine_arguments(args: argparse.Namespace) -> None:
    """Refuse Dask options without ``--engine dask``, and sizes Dask cannot read."""
    if args.engine != Engine.DASK:
        if args.scheduler or args.worker_memory:
            fail("--scheduler and --worker-memory need --engine dask")
        return
    if args.worker_memory is not None and not _MEMORY.fullmatch(args.worker_memory):
        fail(f"--worker-memory {args.worker_memory!r} is not a size such as 4GiB or 512MB")
    if args.scheduler is not None and args.worker_memory is not None:
        fail("--worker-memory sizes a LocalCluster's workers: a running cluster's workers "
             "have their own limits (dask worker --memory-limit)")


@contextlib.contextmanager
def runner_for(args: argparse.Namespace) -> Iterator[Runner]:
    """The runner ``--engine`` asks for (a Dask cluster is closed afterwards)."""
    check_engine_arguments(args)
    if args.engine != Engine.DASK:
        yield InProcess()
        return
    from pseudogate.batch.runner import dask_runner

    runner: Any
    with dask_runner(scheduler=args.scheduler, worker_memory=args.worker_memory,
                     quiet=not getattr(args, "verbose", False)) as runner:
        yield runner
