"""One rule for every state change, through real servers: prepare → audit event → commit.

An audit log that cannot be written commits nothing; events carry what an auditor needs; a
change audited but never committed (the process died in between) gets a follow-up event at the
next start-up, and the log still verifies.
"""

from __future__ import annotations

import json
import random
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from pseudogate.audit import AUDIT_DB_NAME
from pseudogate.audit.reconcile import ABORTED
from pseudogate.service.app import GatewaySettings, start_gateway
from pseudogate.service.server import GatewayServer
from pseudogate.store.catalog import Catalog
from pseudogate.tools.synthetic import nhs_number
from pseudogate.v1 import admin_pb2, admin_pb2_grpc, dataset_pb2, dataset_pb2_grpc
from tests.statements import STATEMENTS
from tests.store.helpers import GP_POLICY, gp_columns, ipc, people

ADMIN = "/pseudogate.v1.AdminService/"
PROJECT_POLICY = """\
version: 1
name: study
columns:
  person:                     {action: keep}
  gp_diagnoses.email:         {action: drop}
  gp_diagnoses.date_of_birth: {action: drop}
  gp_diagnoses.sex:           {action: generalise, hierarchy: {type: suppress}}
  gp_diagnoses.diagnosis:     {action: keep}
privacy: {k: 2}
"""


def _events(data: Path) -> list[dict]:
    with sqlite3.connect(data / AUDIT_DB_NAME) as db:
        return [json.loads(b) for (b,) in db.execute("SELECT body FROM events ORDER BY seq")]


def _catalog(data: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(f"file:{data / Catalog.FILE_NAME}?mode=ro", uri=True) as db:
        return db.execute(sql).fetchall()


def _numbers(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return sorted({nhs_number(rng) for _ in range(n)})


def _start(base: Path, **options: object) -> GatewayServer:
    policies = base / "policies"
    policies.mkdir(exist_ok=True)
    (policies / "gp.yaml").write_text(GP_POLICY, encoding="utf-8")
    return start_gateway(
        GatewaySettings(port=0, insecure=True, data_dir=base / "data", policies=policies, **options)
    )


def _submit(channel: grpc.Channel, rows: int = 6) -> dataset_pb2.SubmitDatasetResponse:
    header = dataset_pb2.SubmissionHeader(dataset="gp_diagnoses", policy="gp", organisation="gp-a")
    payload = ipc(gp_columns(people(rows)))
    return dataset_pb2_grpc.DatasetServiceStub(channel).SubmitDataset(
        iter([dataset_pb2.SubmitDatasetRequest(header=header),
              dataset_pb2.SubmitDatasetRequest(arrow_ipc=payload)])
    )


def _create_project(channel: grpc.Channel, project: str) -> admin_pb2.CreateProjectResponse:
    return admin_pb2_grpc.AdminServiceStub(channel).CreateProject(
        admin_pb2.CreateProjectRequest(
            **STATEMENTS,
            project=project, researcher="uni-bangor", datasets=["gp_diagnoses"],
            policy_yaml=PROJECT_POLICY, expires="2099-01-01",
        )
    )


def _import(channel: grpc.Channel, numbers: list[str]) -> admin_pb2.ImportOptOutsResponse:
    return admin_pb2_grpc.AdminServiceStub(channel).ImportOptOuts(
        admin_pb2.ImportOptOutsRequest(nhs_numbers=numbers)
    )


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[GatewayServer, grpc.Channel]]:
    """A gateway with one dataset version and one opt-out snapshot already committed."""
    gateway = _start(tmp_path, audit_write_timeout=1.0)  # roomy: the machine may be loaded
    try:
        with grpc.insecure_channel(gateway.address) as channel:
            assert _submit(channel).version == 1
            assert _import(channel, _numbers(5, seed=1)).snapshot == 1
            yield gateway, channel
    finally:
        gateway.stop(grace=None)


def test_when_the_audit_log_is_locked_then_no_state_change_is_committed(
    served: tuple[GatewayServer, grpc.Channel], tmp_path: Path
) -> None:
    _, channel = served
    data = tmp_path / "data"
    stored_before = sorted(p.name for p in data.rglob("*.parquet"))
    events_before = len(_events(data))
    blocker = sqlite3.connect(data / AUDIT_DB_NAME, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another process holds the log's write lock
    try:
        for attempt in (
            lambda: _submit(channel),
            lambda: _import(channel, _numbers(7, seed=2)),
            lambda: _create_project(channel, "study-a"),
        ):
            with pytest.raises(grpc.RpcError) as err:
                attempt()
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert _catalog(data, "SELECT max(version) FROM versions") == [(1,)]
    assert _catalog(data, "SELECT max(id), count(*) FROM optout_snapshots") == [(1, 1)]
    assert _catalog(data, "SELECT id FROM projects") == []
    assert sorted(p.name for p in data.rglob("*.parquet")) == stored_before
    assert len(_events(data)) == events_before
    # The log writable again, the same calls commit exactly the next version and snapshot.
    assert _submit(channel).version == 2
    assert _import(channel, _numbers(7, seed=2)).snapshot == 2
    assert _create_project(channel, "study-a").project == "study-a"


def test_when_state_changes_are_audited_then_events_carry_what_an_auditor_needs(
    served: tuple[GatewayServer, grpc.Channel], tmp_path: Path
) -> None:
    _, channel = served
    data = tmp_path / "data"
    submitted = _submit(channel, rows=9)
    imported = _import(channel, _numbers(8, seed=3))
    created = _create_project(channel, "study-b")
    submit_event, import_event, project_event = _events(data)[-3:]
    applied = {r[0] for r in _catalog(data, "SELECT change_id FROM applied_changes")}

    assert submit_event["method"].endswith("/SubmitDataset")
    assert submit_event["details"]["version"] == submitted.version == 2
    assert submit_event["counts"] == {"rows": 9}
    assert submit_event["key_ids"] == {"linkage": submitted.key_id}

    assert import_event["method"] == ADMIN + "ImportOptOuts"
    assert import_event["key_ids"] == {"linkage": submitted.key_id}
    assert import_event["counts"] == {"snapshot": imported.snapshot, "people": imported.count}
    assert imported.snapshot == 2 and imported.count == 8
    assert {k: v for k, v in import_event["details"].items() if k != "change"} == {
        "domain": "person", "previous_snapshot": 1, "previous_people": 5,
    }

    assert project_event["method"] == ADMIN + "CreateProject"
    assert project_event["project"] == "study-b"
    assert project_event["policy_fingerprint"] == created.policy_fingerprint
    assert project_event["key_ids"] == {"project": created.project_key_id}
    assert {k: v for k, v in project_event["details"].items() if k != "change"} == {
        "researcher": "uni-bangor", "datasets": ["gp_diagnoses"], "domain": "person",
        "expires": "2099-01-01", "linkage": "exact", **STATEMENTS,
    }
    changes = [e["details"]["change"] for e in (submit_event, import_event, project_event)]
    assert len(set(changes)) == 3 and set(changes) <= applied


def test_when_a_change_is_refused_before_its_commit_then_its_event_is_not_ok_and_it_is_not_applied(
    served: tuple[GatewayServer, grpc.Channel], tmp_path: Path
) -> None:
    _, channel = served
    _create_project(channel, "study-c")
    with pytest.raises(grpc.RpcError) as err:
        _create_project(channel, "study-c")
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    last = _events(tmp_path / "data")[-1]
    assert last["status"] == "ALREADY_EXISTS" and "details" not in last


_CRASH_BETWEEN_AUDIT_AND_COMMIT = """
import os, sys
from pathlib import Path
import grpc
from pseudogate.service.app import GatewaySettings, start_gateway
from pseudogate.store.catalog import Catalog
from pseudogate.v1 import admin_pb2, admin_pb2_grpc

def die(*args, **kwargs):
    os._exit(17)  # the process dies inside the commit transaction, after the audit event

Catalog.insert_applied_change = staticmethod(die)
gateway = start_gateway(GatewaySettings(port=0, insecure=True, data_dir=Path(sys.argv[1]),
                                        policies=Path(sys.argv[2])))
with grpc.insecure_channel(gateway.address) as channel:
    admin_pb2_grpc.AdminServiceStub(channel).ImportOptOuts(
        admin_pb2.ImportOptOutsRequest(nhs_numbers=sys.argv[3:]), timeout=30)
sys.exit(0)
"""


def test_when_the_gateway_dies_between_audit_and_commit_then_restart_writes_a_follow_up(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pseudogate.cli import main

    data = tmp_path / "data"
    gateway = _start(tmp_path)
    with grpc.insecure_channel(gateway.address) as channel:
        _import(channel, _numbers(5, seed=1))
    gateway.stop(grace=None)

    crashed = subprocess.run(
        [sys.executable, "-c", _CRASH_BETWEEN_AUDIT_AND_COMMIT, str(data),
         str(tmp_path / "policies"), *_numbers(6, seed=4)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert crashed.returncode == 17, crashed.stderr
    claimed = _events(data)[-1]
    assert claimed["method"] == ADMIN + "ImportOptOuts" and claimed["status"] == "OK"
    assert claimed["counts"]["snapshot"] == 2
    assert _catalog(data, "SELECT max(id) FROM optout_snapshots") == [(1,)]

    for _ in range(2):  # the second start-up finds nothing more to reconcile
        gateway = _start(tmp_path)
        try:
            address = gateway.address
            assert main(["audit", "export", "--server", address, "--insecure",
                         "--output", str(tmp_path / "audit.jsonl")]) == 0
            assert main(["keys", "public", "--server", address, "--insecure",
                         "--output", str(tmp_path / "pk.pem")]) == 0
        finally:
            gateway.stop(grace=None)

    events = _events(data)
    follow_ups = [e for e in events if e["status"] == ABORTED]
    assert len(follow_ups) == 1
    (follow_up,) = follow_ups
    assert follow_up["seq"] > claimed["seq"]
    assert follow_up["method"] == claimed["method"]
    assert follow_up["details"] == {
        "change": claimed["details"]["change"], "reconciles": claimed["seq"],
    }
    capsys.readouterr()
    assert main(["audit", "verify", str(tmp_path / "audit.jsonl"),
                 "--public-key", str(tmp_path / "pk.pem")]) == 0
    assert "verifies" in capsys.readouterr().out


def test_when_a_servicer_changes_state_then_it_goes_through_apply_change() -> None:
    """The rule has one door: no servicer commits, audits a commit point or releases an
    extract itself (the unaudited store shortcuts are for tests and offline tools). Only the
    audit service's reads audit early, so that they appear in what they return."""
    from pseudogate import service

    folder = Path(service.__file__).parent
    shortcuts = (".commit(", "commit_point(", "create_project(", "import_optouts(",
                 "build_extract(")
    offenders = {
        (path.name, shortcut)
        for path in folder.glob("*.py")
        if path.name not in {"changes.py", "calls.py"}
        for shortcut in shortcuts
        if shortcut in path.read_text(encoding="utf-8")
    }
    assert offenders == {("audit.py", "commit_point(")}
    users = {p.name for p in folder.glob("*.py") if "apply_change(" in p.read_text(encoding="utf-8")}
    assert {"admin.py", "datasets.py", "extracts.py", "rights.py"} <= users
