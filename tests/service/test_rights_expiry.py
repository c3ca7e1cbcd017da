"""Expiries are recorded without anyone touching the request: at start-up, and before every
RightsService call or read of the register, each as its own audited state change."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path

import grpc

from pseudogate.audit import AUDIT_DB_NAME
from pseudogate.audit.verify import verify_database
from pseudogate.core.keyring import Keyring
from pseudogate.core.manifest import load_public_key_pem
from pseudogate.service.app import GatewaySettings, start_gateway
from pseudogate.service.rights import SWEEP_METHOD
from pseudogate.v1 import audit_pb2, audit_pb2_grpc, rights_pb2, rights_pb2_grpc
from tests.store.helpers import Clock, keyring_document, people

START = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)


def _settings(tmp_path: Path, clock: Clock) -> GatewaySettings:
    keyring = tmp_path / "keyring.json"
    if not keyring.exists():
        Keyring.from_document(keyring_document()).save(keyring)
    return GatewaySettings(port=0, insecure=True, data_dir=tmp_path / "data", keyring=keyring,
                           clock=clock)


def _request(address: str, number: str) -> str:
    with grpc.insecure_channel(address) as ch:
        reply = rights_pb2_grpc.RightsServiceStub(ch).RequestSubjectAccess(
            rights_pb2.RequestSubjectAccessRequest(nhs_number=number, reason="a letter"),
            timeout=30)
    return str(reply.request.id)


def _events(data: Path) -> list[dict]:
    with sqlite3.connect(data / AUDIT_DB_NAME) as db:
        return [json.loads(b) for (b,) in db.execute("SELECT body FROM events ORDER BY seq")]


def _expiries(data: Path) -> list[dict]:
    return [e for e in _events(data) if e.get("details") and e["details"].get("request_status")
            == "expired" and "change" in e["details"]]


def _statuses(data: Path) -> dict[str, str]:
    with sqlite3.connect(data / "catalog.sqlite3") as db:
        return dict(db.execute("SELECT id, status FROM rights_requests").fetchall())


def test_when_the_gateway_starts_or_any_request_call_comes_then_due_expiries_are_recorded(
    tmp_path: Path,
) -> None:
    data, clock = tmp_path / "data", Clock(START)
    folk = people(3)
    gateway = start_gateway(_settings(tmp_path, clock))
    try:
        first = _request(gateway.address, folk[0]["nhs_number"])
        clock.now = START + dt.timedelta(days=2)
        second = _request(gateway.address, folk[1]["nhs_number"])
    finally:
        gateway.stop(grace=None)
    # While the gateway is down, the first request's week passes.
    clock.now = START + dt.timedelta(days=7, seconds=1)
    gateway = start_gateway(_settings(tmp_path, clock))
    try:
        # Recorded at start-up: nobody touched the request.
        (expiry,) = _expiries(data)
        assert expiry["method"] == SWEEP_METHOD and expiry["status"] == "OK"
        assert expiry["organisation"] is None and expiry["role"] is None
        assert expiry["details"]["request"] == first
        assert expiry["details"]["request_kind"] == "subject_access"
        assert _statuses(data) == {first: "expired", second: "pending"}
        # Then any request call: the second expires, its expiry recorded before the call.
        clock.now = START + dt.timedelta(days=9, seconds=1)
        third = _request(gateway.address, folk[2]["nhs_number"])
        expiries = _expiries(data)
        assert [e["details"]["request"] for e in expiries] == [first, second]
        assert _statuses(data) == {first: "expired", second: "expired", third: "pending"}
        made = next(e for e in _events(data) if e.get("details")
                    and e["details"].get("request") == third)
        assert expiries[1]["seq"] < made["seq"]
        # Reading the register sweeps too; each expiry is recorded once, whatever reads it.
        clock.now = START + dt.timedelta(days=17)
        with grpc.insecure_channel(gateway.address) as ch:
            register = json.loads(audit_pb2_grpc.AuditServiceStub(ch).GetRequestRegister(
                audit_pb2.GetRequestRegisterRequest(), timeout=30).register_json)
            rights_pb2_grpc.RightsServiceStub(ch).ListRequests(
                rights_pb2.ListRequestsRequest(), timeout=30)
        assert register["months"] == [
            {"month": "2026-03", "kind": "subject_access", "outcome": "expired", "requests": 3}]
        assert [e["details"]["request"] for e in _expiries(data)] == [first, second, third]
        with sqlite3.connect(data / "catalog.sqlite3") as db:
            assert db.execute("SELECT count(*) FROM applied_changes WHERE kind = 'rights_expiry'"
                              ).fetchone() == (3,)
    finally:
        gateway.stop(grace=None)
    public = Keyring.from_document(keyring_document()).signer().public_key_pem()
    report = verify_database(data / AUDIT_DB_NAME, load_public_key_pem(public))
    assert report.events == len(_events(data))
