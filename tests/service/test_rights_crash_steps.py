"""An approval or a delivery audited but never committed (the gateway died in between) gets a
follow-up event at the next start-up, and the request is as it was before the step: still
pending, or approved with its result still to fetch, once (docs/audit.md)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import grpc

from pseudogate.audit import AUDIT_DB_NAME
from pseudogate.audit.reconcile import ABORTED
from pseudogate.core.authz import Role
from pseudogate.core.keyring import Keyring
from pseudogate.service.app import GatewaySettings, start_gateway
from pseudogate.service.server import GatewayServer, TlsFiles
from pseudogate.tools.certs import write_dev_certs
from pseudogate.v1 import rights_pb2, rights_pb2_grpc
from tests.store.helpers import keyring_document

OPS, AUDIT = "ops", "audit-office"
NUMBER = "9434765919"

_CRASH = """
import os, sys
from pathlib import Path
import grpc
from pseudogate.service.app import GatewaySettings, start_gateway
from pseudogate.service.server import TlsFiles
from pseudogate.store.catalog import Catalog
from pseudogate.v1 import rights_pb2, rights_pb2_grpc

base, who, step, rid = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]

def die(*args, **kwargs):
    os._exit(17)  # inside the commit transaction, after the audit event

Catalog.insert_applied_change = staticmethod(die)
pki = base / "pki"
gateway = start_gateway(GatewaySettings(
    port=0, data_dir=base / "data", keyring=base / "keyring.json",
    tls=TlsFiles(pki / "ca.pem", pki / "server.pem", pki / "server.key")))
creds = grpc.ssl_channel_credentials(
    root_certificates=(pki / "ca.pem").read_bytes(),
    private_key=(pki / f"{who}.key").read_bytes(),
    certificate_chain=(pki / f"{who}.pem").read_bytes())
with grpc.secure_channel(f"localhost:{gateway.port}", creds) as channel:
    stub = rights_pb2_grpc.RightsServiceStub(channel)
    if step == "approve":
        stub.ApproveRequest(rights_pb2.ApproveRequestRequest(request=rid), timeout=30)
    else:
        stub.GetSubjectAccessReport(
            rights_pb2.GetSubjectAccessReportRequest(request=rid), timeout=30)
sys.exit(0)
"""


def _start(base: Path) -> GatewayServer:
    pki = base / "pki"
    return start_gateway(GatewaySettings(
        port=0, data_dir=base / "data", keyring=base / "keyring.json",
        tls=TlsFiles(pki / "ca.pem", pki / "server.pem", pki / "server.key")))


def _stub(
    base: Path, gateway: GatewayServer, who: str
) -> tuple[grpc.Channel, rights_pb2_grpc.RightsServiceStub]:
    pki = base / "pki"
    creds = grpc.ssl_channel_credentials(
        root_certificates=(pki / "ca.pem").read_bytes(),
        private_key=(pki / f"{who}.key").read_bytes(),
        certificate_chain=(pki / f"{who}.pem").read_bytes())
    channel = grpc.secure_channel(f"localhost:{gateway.port}", creds)
    return channel, rights_pb2_grpc.RightsServiceStub(channel)


def _crash(base: Path, who: str, step: str, rid: str) -> None:
    crashed = subprocess.run([sys.executable, "-c", _CRASH, str(base), who, step, rid],
                             capture_output=True, text=True, timeout=120, check=False)
    assert crashed.returncode == 17, crashed.stderr


def _events(base: Path) -> list[dict]:
    with sqlite3.connect(base / "data" / AUDIT_DB_NAME) as db:
        return [json.loads(b) for (b,) in db.execute("SELECT body FROM events ORDER BY seq")]


def _catalog(base: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(base / "data" / "catalog.sqlite3") as db:
        return db.execute(sql).fetchall()


def _settled(base: Path, method: str, status: str) -> None:
    """The step's OK event, then exactly one follow-up naming its change."""
    events = _events(base)
    claimed = [e for e in events if e["method"].endswith(method) and e["status"] == "OK"
               and e.get("details", {}).get("request_status") == status]
    follow_ups = [e for e in events if e["status"] == ABORTED
                  and e["details"]["change"] == claimed[-1]["details"]["change"]]
    assert len(follow_ups) == 1
    assert follow_ups[0]["details"]["reconciles"] == claimed[-1]["seq"]


def test_when_the_gateway_dies_during_an_approval_or_a_delivery_then_restart_settles_it(
    tmp_path: Path,
) -> None:
    base = tmp_path
    write_dev_certs(base / "pki", [(OPS, Role.ADMIN), (AUDIT, Role.AUDITOR)])
    Keyring.from_document(keyring_document()).save(base / "keyring.json")
    gateway = _start(base)
    try:
        channel, stub = _stub(base, gateway, OPS)
        with channel:
            rid = stub.RequestSubjectAccess(rights_pb2.RequestSubjectAccessRequest(
                nhs_number=NUMBER, reason="a letter"), timeout=30).request.id
    finally:
        gateway.stop(grace=None)

    _crash(base, AUDIT, "approve", rid)  # the approval's event is written, then the process dies
    gateway = _start(base)
    try:
        _settled(base, "/ApproveRequest", "approved")
        assert _catalog(base, "SELECT status FROM rights_requests") == [("pending",)]
        assert _catalog(base, "SELECT count(*) FROM rights_approvals") == [(0,)]
        channel, stub = _stub(base, gateway, AUDIT)
        with channel:  # the approval can be given again, and counts once
            reply = stub.ApproveRequest(
                rights_pb2.ApproveRequestRequest(request=rid), timeout=30)
        assert reply.request.status == "approved" and reply.request.approvals == 1
    finally:
        gateway.stop(grace=None)

    _crash(base, OPS, "report", rid)  # the delivery's event is written, then the process dies
    gateway = _start(base)
    try:
        _settled(base, "/GetSubjectAccessReport", "executed")
        assert _catalog(base, "SELECT status FROM rights_requests") == [("approved",)]
        assert _catalog(base, "SELECT count(*) FROM rights_deliveries") == [(0,)]
        channel, stub = _stub(base, gateway, OPS)
        with channel:  # the report was never handed over: it is fetched now, once
            report = json.loads(stub.GetSubjectAccessReport(
                rights_pb2.GetSubjectAccessReportRequest(request=rid), timeout=30).report_json)
            assert report["request"] == rid
            try:
                stub.GetSubjectAccessReport(
                    rights_pb2.GetSubjectAccessReportRequest(request=rid), timeout=30)
            except grpc.RpcError as exc:
                assert exc.code() == grpc.StatusCode.FAILED_PRECONDITION
            else:
                raise AssertionError("a result is returned once")
    finally:
        gateway.stop(grace=None)
    assert _catalog(base, "SELECT status FROM rights_requests") == [("executed",)]
    for path in (base / "data").rglob("*"):
        if path.is_file():
            assert NUMBER.encode() not in path.read_bytes()
