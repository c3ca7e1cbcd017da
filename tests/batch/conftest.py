"""A small LocalCluster shared by the batch tests (2 workers, 1 thread each)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_KEYRING = ROOT / "keys_example" / "keyring.json"


@pytest.fixture(scope="session")
def scheduler() -> Iterator[str]:
    """The address of a running LocalCluster's scheduler (loopback TCP)."""
    import dask
    from distributed import LocalCluster

    logging.getLogger("distributed").setLevel(logging.WARNING)
    # A loaded 2-core machine (CI beside other work) can stall a heartbeat for many seconds:
    # generous timeouts keep the shared client connected rather than failing a test on load.
    dask.config.set({"distributed.comm.timeouts.connect": "120s",
                     "distributed.comm.timeouts.tcp": "300s",
                     "distributed.scheduler.worker-ttl": "600s"})
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address="127.0.0.1:0", memory_limit="1GiB") as cluster:
        yield cluster.scheduler_address


@pytest.fixture(scope="session")
def dask_runner(scheduler: str) -> Iterator[object]:
    """A DaskRunner connected to the shared LocalCluster."""
    from pseudogate.batch.runner import dask_runner as connect

    with connect(scheduler=scheduler) as runner:
        yield runner
