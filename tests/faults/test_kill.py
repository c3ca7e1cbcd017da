"""kill -9 of ``pseudogate serve`` at chosen and random points of every state change.

Each point: a real server on a copy of the template data directory, one state change from a
client, SIGKILL at the point, then a restart on the same directory (it must start), a graceful
stop (SIGTERM), and the invariant (tests/faults/invariants.py). A client that was answered OK
must find its change committed: acknowledged changes are durable. A client that received
extract data must find the extract audited.

Deterministic points: after the submission header, mid-stream (half the Arrow batches sent, the
stream open), the first extract message received, and "audit pending": the test holds the audit
database's write lock, so the server is killed while its audit write waits (the catalog is
watched for a commit made before the audit event; serve's audit write timeout is 5 s).
Random points: delays from the start of the call, drawn from ``random.Random(SEED)``; the seed
is in every test id and failure message (set PSEUDOGATE_FAULT_SEED to try others).
"""

from __future__ import annotations

import contextlib
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from .invariants import (
    InvariantReport,
    method_name,
    raw_identifier_problems,
    read_catalog,
    read_events,
)
from .processes import ServeProcess
from .workload import (
    EXTRACT,
    GP_DATASET,
    NEW_PROJECT,
    OPTOUTS,
    PROJECT,
    RAW_IDENTIFIERS,
    SEED,
    SUBMISSION_BATCHES,
    SUBMISSION_ROWS,
    SUBMIT,
    TEMPLATE_PROJECT,
    Outcome,
    run_change,
)

#: Random delays are drawn from [0, span]: a little longer than the change takes on an idle
#: machine, so some points fall after the answer (durability) and most inside the change.
RANDOM_SPAN = {SUBMIT: 0.15, PROJECT: 0.08, OPTOUTS: 0.08, EXTRACT: 0.4}
#: Random points per state change (PSEUDOGATE_FAULT_RANDOM_POINTS for a longer run; each point
#: starts two gateway processes, about 2 s on an idle machine).
RANDOM_POINTS = int(os.environ.get("PSEUDOGATE_FAULT_RANDOM_POINTS", "2"))
SETTLE = 0.2  # after the client paused, time for the server to take in what it sent
#: After the whole request is sent, how long the server gets to reach its audit write and wait
#: on the locked log (serve's audit write timeout is 5 s) ...
AUDIT_PENDING = 0.5
#: ... or, for changes that may commit before they audit, how long the catalog is watched for
#: that commit (the kill follows it at once).
AUDIT_PENDING_COMMIT = 3.0
#: Where the client pauses: after so many of the submission's Arrow batches (the stream still
#: open), or after the first extract message.
PAUSE: dict[str, int | str] = {
    "after_header": 0,
    "mid_stream": SUBMISSION_BATCHES // 2,
    "first_message": "first_message",
}


@dataclass(frozen=True)
class KillPoint:
    change: str
    when: str  # after_header | mid_stream | first_message | audit_pending | random
    delay: float = 0.0

    def __str__(self) -> str:
        if self.when == "random":
            return f"{self.change}-random-{self.delay * 1000:.0f}ms-seed{SEED}"
        return f"{self.change}-{self.when}"


def _points() -> list[Any]:
    rng = random.Random(SEED)
    chosen: list[Any] = [
        KillPoint(SUBMIT, "after_header"),
        KillPoint(SUBMIT, "mid_stream"),
        KillPoint(SUBMIT, "audit_pending"),
        KillPoint(PROJECT, "audit_pending"),
        KillPoint(OPTOUTS, "audit_pending"),
        KillPoint(EXTRACT, "audit_pending"),
        KillPoint(EXTRACT, "first_message"),
    ]
    for change, span in RANDOM_SPAN.items():
        delays = [round(rng.uniform(0, span), 3) for _ in range(RANDOM_POINTS)]
        chosen += [KillPoint(change, "random", delay) for delay in delays]
    return chosen


def _commit_seen(data: Path, change: str) -> Callable[[], bool] | None:
    """For changes that, on some gateways, commit before their audit event: has it committed?"""
    if change == PROJECT:
        return lambda: NEW_PROJECT in read_catalog(data).projects
    if change == OPTOUTS:
        return lambda: len(read_catalog(data).snapshots) > 1
    return None


def _kill_at(
    point: KillPoint,
    server: ServeProcess,
    data: Path,
    audit_write_lock: Callable[[Path], contextlib.AbstractContextManager[None]],
) -> Outcome:
    outcome = Outcome()
    with contextlib.ExitStack() as stack, grpc.insecure_channel(server.address) as channel:
        if point.when == "audit_pending":
            stack.enter_context(audit_write_lock(data))
        grpc.channel_ready_future(channel).result(timeout=30)
        client = threading.Thread(
            target=run_change,
            args=(channel, point.change, outcome),
            kwargs={"pause": PAUSE.get(point.when)},
            daemon=True,
        )
        started = time.monotonic()
        client.start()
        try:
            if point.when == "random":
                time.sleep(max(0.0, point.delay - (time.monotonic() - started)))
            elif point.when == "audit_pending":
                assert outcome.sent.wait(60), "the client never sent its whole request"
                committed = _commit_seen(data, point.change)
                wait = AUDIT_PENDING if committed is None else AUDIT_PENDING_COMMIT
                deadline = time.monotonic() + wait
                while time.monotonic() < deadline and not (committed and committed()):
                    time.sleep(0.02)
            else:
                assert outcome.paused.wait(60), "the client never reached its pause"
                if point.when != "first_message":
                    time.sleep(SETTLE)
        finally:
            server.kill()
            outcome.resume.set()
        client.join(60)
    assert outcome.code is not None, "the client call did not end after the kill"
    return outcome


def _acknowledged_changes_are_committed(
    point: KillPoint, outcome: Outcome, data: Path
) -> list[str]:
    state = read_catalog(data)
    response = outcome.response
    problems = []
    if outcome.code != grpc.StatusCode.OK and point.change != EXTRACT:
        return []
    if point.change == SUBMIT:
        stored = state.versions.get((GP_DATASET, response.version))
        if stored is None or stored[1] != response.rows or response.rows != SUBMISSION_ROWS:
            problems.append(f"acknowledged {GP_DATASET} v{response.version} is not committed whole")
    elif point.change == PROJECT:
        if NEW_PROJECT not in state.projects:
            problems.append(f"acknowledged project {NEW_PROJECT!r} is not committed")
    elif point.change == OPTOUTS:
        if state.snapshots.get(response.snapshot) != response.count:
            problems.append(f"acknowledged opt-out snapshot {response.snapshot} is not committed")
    elif outcome.messages:
        audited = [
            e
            for e in read_events(data)
            if (method_name(e), e["status"], e["project"]) == (EXTRACT, "OK", TEMPLATE_PROJECT)
        ]
        if not audited:
            problems.append(f"the client received {outcome.messages} extract message(s) unaudited")
    return problems


@pytest.mark.parametrize("point", _points(), ids=str)
def test_when_the_gateway_is_killed_during_a_state_change_then_it_restarts_and_the_invariant_holds(
    point: KillPoint,
    data_dir: Path,
    serve: Callable[[Path], ServeProcess],
    invariant: Callable[..., InvariantReport],
    audit_write_lock: Callable[[Path], contextlib.AbstractContextManager[None]],
) -> None:
    outcome = _kill_at(point, serve(data_dir), data_dir, audit_write_lock)
    # What the kill left (journals, WAL, staging files) holds no raw identifier either.
    leaked = raw_identifier_problems(data_dir, RAW_IDENTIFIERS)
    assert not leaked, f"[fault seed {SEED}] kill point {point}, before the restart: {leaked}"
    restarted = serve(data_dir)  # must start on what the kill left
    assert restarted.terminate() == 0, restarted.log_tail()
    context = f"kill point {point}, client saw {outcome.code and outcome.code.name}"
    print(context)
    assert not list((data_dir / "tmp").iterdir()), f"{context}: start-up left staging files"
    lost = _acknowledged_changes_are_committed(point, outcome, data_dir)
    assert not lost, f"[fault seed {SEED}] {context}: {lost}"
    report = invariant(data_dir, context=context, fail=False)
    assert not report.problems, f"[fault seed {SEED}] {context}\n{report}"
