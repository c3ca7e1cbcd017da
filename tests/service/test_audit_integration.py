"""Every RPC through a real server leaves an audit event; a log that cannot be written refuses."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import grpc
import pytest

from pseudogate.audit import AUDIT_DB_NAME
from pseudogate.service.app import GatewaySettings, start_gateway
from pseudogate.v1 import tokenisation_pb2 as pb
from pseudogate.v1 import tokenisation_pb2_grpc as pb_grpc


def _events(data_dir: Path) -> list[dict]:
    with sqlite3.connect(data_dir / AUDIT_DB_NAME) as db:
        return [json.loads(body) for (body,) in db.execute("SELECT body FROM events ORDER BY seq")]


def test_when_rpcs_succeed_and_fail_then_each_is_audited_without_values(tmp_path: Path) -> None:
    data = tmp_path / "data"
    gateway = start_gateway(GatewaySettings(port=0, insecure=True, data_dir=data))
    try:
        with grpc.insecure_channel(gateway.address) as ch:
            stub = pb_grpc.TokenisationServiceStub(ch)
            stub.Tokenise(pb.TokeniseRequest(domain="nhs_number", values=["9434765919", "123"]))
            with pytest.raises(grpc.RpcError):
                stub.Tokenise(pb.TokeniseRequest(domain="no_such", values=["9434765919"]))
            list(
                stub.TokeniseStream(
                    iter([pb.TokeniseStreamRequest(domain="name", values=["Zoë Ødegård"])] * 2)
                )
            )
    finally:
        gateway.stop(grace=None)
    events = _events(data)
    assert [(e["method"].rsplit("/", 1)[1], e["status"]) for e in events] == [
        ("Tokenise", "OK"),
        ("Tokenise", "INVALID_ARGUMENT"),
        ("TokeniseStream", "OK"),
        ("TokeniseStream", "OK"),
    ]
    assert events[0]["counts"] == {"values": 2, "invalid": 1}
    assert events[0]["key_ids"] == {"linkage": "example-link"}
    assert all(e["organisation"] == "insecure" for e in events)
    raw = (data / AUDIT_DB_NAME).read_bytes()
    for value in (b"9434765919", "Zoë".encode(), b"zoe odegard"):
        assert value not in raw


def test_when_the_audit_log_cannot_be_written_then_the_call_is_unavailable(tmp_path: Path) -> None:
    data = tmp_path / "data"
    gateway = start_gateway(
        GatewaySettings(port=0, insecure=True, data_dir=data, audit_write_timeout=0.2)
    )
    blocker = sqlite3.connect(data / AUDIT_DB_NAME, isolation_level=None)
    try:
        blocker.execute("BEGIN EXCLUSIVE")  # another writer holds the database
        with grpc.insecure_channel(gateway.address) as ch:
            stub = pb_grpc.TokenisationServiceStub(ch)
            with pytest.raises(grpc.RpcError) as err:
                stub.Tokenise(pb.TokeniseRequest(domain="nhs_number", values=["9434765919"]))
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "audit" in err.value.details()
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
        gateway.stop(grace=None)


def test_when_a_gateway_stops_then_another_can_start_on_the_same_data_dir(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for _ in range(2):
        gateway = start_gateway(GatewaySettings(port=0, insecure=True, data_dir=data))
        with grpc.insecure_channel(gateway.address) as ch:
            pb_grpc.TokenisationServiceStub(ch).Tokenise(
                pb.TokeniseRequest(domain="person", values=["9434765919"])
            )
        gateway.stop(grace=None)
    assert [e["seq"] for e in _events(data)] == [1, 2]
