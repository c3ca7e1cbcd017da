"""A rights request audited but never committed (the gateway died in between) gets a follow-up
event at the next start-up, exactly as every other state change (docs/audit.md)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

from pseudogate.audit import AUDIT_DB_NAME
from pseudogate.audit.reconcile import ABORTED
from pseudogate.service.app import GatewaySettings, start_gateway

_CRASH = """
import os, sys
from pathlib import Path
import grpc
from pseudogate.service.app import GatewaySettings, start_gateway
from pseudogate.store.catalog import Catalog
from pseudogate.v1 import rights_pb2, rights_pb2_grpc

def die(*args, **kwargs):
    os._exit(17)  # inside the commit transaction, after the audit event

Catalog.insert_applied_change = staticmethod(die)
gateway = start_gateway(GatewaySettings(port=0, insecure=True, data_dir=Path(sys.argv[1])))
with grpc.insecure_channel(gateway.address) as channel:
    rights_pb2_grpc.RightsServiceStub(channel).RequestSubjectAccess(
        rights_pb2.RequestSubjectAccessRequest(nhs_number=sys.argv[2], reason="a letter"),
        timeout=30)
sys.exit(0)
"""


def test_when_the_gateway_dies_between_a_requests_event_and_its_commit_then_restart_settles_it(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    number = "9434765919"
    crashed = subprocess.run([sys.executable, "-c", _CRASH, str(data), number],
                             capture_output=True, text=True, timeout=120, check=False)
    assert crashed.returncode == 17, crashed.stderr
    gateway = start_gateway(GatewaySettings(port=0, insecure=True, data_dir=data))
    gateway.stop(grace=None)
    with sqlite3.connect(data / AUDIT_DB_NAME) as db:
        events = [json.loads(b) for (b,) in db.execute("SELECT body FROM events ORDER BY seq")]
    claimed = next(e for e in events if e["method"].endswith("/RequestSubjectAccess"))
    assert claimed["status"] == "OK" and claimed["details"]["request_status"] == "pending"
    (follow_up,) = [e for e in events if e["status"] == ABORTED]
    assert follow_up["details"] == {"change": claimed["details"]["change"],
                                    "reconciles": claimed["seq"]}
    with sqlite3.connect(data / "catalog.sqlite3") as db:
        assert db.execute("SELECT count(*) FROM rights_requests").fetchone() == (0,)
    for path in data.rglob("*"):
        if path.is_file():
            assert number.encode() not in path.read_bytes()
