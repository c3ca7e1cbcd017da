"""A locked audit log: every state change is refused UNAVAILABLE and changes nothing.

The test holds the audit database's write lock (``BEGIN IMMEDIATE``) while a gateway with a
short audit write timeout serves one state change; ``serve`` has no flag for the timeout, so
the gateway runs in-process. Then the lock is released, the gateway stopped, and the invariant
checked.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from pseudogate.service.server import GatewayServer

from .invariants import InvariantReport, read_catalog
from .workload import EXTRACT, OPTOUTS, PROJECT, SEED, SUBMIT, Outcome, run_change


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize(
    "change",
    [
        SUBMIT,
        PROJECT,
        OPTOUTS,
        EXTRACT,
    ],
)
def test_when_the_audit_log_is_locked_then_a_state_change_is_unavailable_and_changes_nothing(
    change: str,
    data_dir: Path,
    gateway: Callable[..., GatewayServer],
    audit_write_lock: Callable[[Path], contextlib.AbstractContextManager[None]],
    invariant: Callable[..., InvariantReport],
) -> None:
    before = read_catalog(data_dir)
    stored_before = _files(data_dir / "datasets")
    server = gateway(data_dir, audit_write_timeout=0.3)
    with audit_write_lock(data_dir), grpc.insecure_channel(server.address) as channel:
        outcome = run_change(channel, change, Outcome())
    server.stop(grace=None)
    context = f"{change} with the audit log locked: {outcome.code} {outcome.details!r}"
    print(context)

    assert outcome.code == grpc.StatusCode.UNAVAILABLE and "audit" in outcome.details, context
    assert outcome.messages == 0, f"{context}: extract data left the gateway unaudited"
    assert read_catalog(data_dir) == before, f"{context}: the catalog changed"
    assert _files(data_dir / "datasets") == stored_before, f"{context}: dataset files changed"
    assert not _files(data_dir / "tmp"), f"{context}: staging files left behind"
    invariant(data_dir, context=f"[seed {SEED}] {context}")
