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


def test_when_the_signing_key_is_rotated_then_auditors_fetch_every_key_and_the_log_verifies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The whole rotation story through real gateways and the CLI: checkpoints before the
    rotation are signed by the old key, later ones by the new; `keys public --all` publishes
    both and `audit verify` accepts the bundle, while the current key alone does not do."""
    from pseudogate.cli import main
    from pseudogate.core.keyring import Keyring, KeyStatus, Purpose
    from pseudogate.core.manifest import load_public_keys_pem
    from pseudogate.v1 import audit_pb2, audit_pb2_grpc

    ring_path, data = tmp_path / "keyring.json", tmp_path / "data"
    ring = Keyring.generate()
    ring.save(ring_path)
    old_id = ring.primary(Purpose.SIGNING).id

    def serve_one_call() -> tuple[str, audit_pb2.GetPublicKeyResponse]:
        gateway = start_gateway(
            GatewaySettings(port=0, insecure=True, data_dir=data, keyring=ring_path)
        )
        try:
            with grpc.insecure_channel(gateway.address) as ch:
                pb_grpc.TokenisationServiceStub(ch).Tokenise(
                    pb.TokeniseRequest(domain="nhs_number", values=["9434765919"])
                )
                reply = audit_pb2_grpc.AuditServiceStub(ch).GetPublicKey(
                    audit_pb2.GetPublicKeyRequest()
                )
            if reply.key_id != old_id:  # after the rotation: export and fetch keys via the CLI
                for argv in (
                    ("audit", "export", "--insecure", "--output", str(tmp_path / "a.jsonl")),
                    ("keys", "public", "--insecure", "--output", str(tmp_path / "now.pem")),
                    ("keys", "public", "--insecure", "--all", "--output", str(tmp_path / "all.pem")),
                ):
                    assert main([*argv[:2], "--server", gateway.address, *argv[2:]]) == 0
        finally:
            gateway.stop(grace=None)  # signs a shutdown checkpoint with the current key
        return reply.key_id, reply

    first_id, before = serve_one_call()
    assert first_id == old_id and [k.key_id for k in before.signing_keys] == [old_id]
    ring = Keyring.load(ring_path)
    new_id = ring.add(Purpose.SIGNING).id
    ring.promote(new_id)
    ring.save(ring_path)
    second_id, after = serve_one_call()

    assert second_id == new_id
    assert [(k.key_id, k.status) for k in after.signing_keys] == [
        (new_id, KeyStatus.PRIMARY.value),
        (old_id, KeyStatus.ACTIVE.value),
    ]
    assert after.signing_keys[0].public_key_pem == after.public_key_pem
    assert len(load_public_keys_pem((tmp_path / "all.pem").read_bytes())) == 2
    capsys.readouterr()
    export = str(tmp_path / "a.jsonl")
    assert main(["audit", "verify", export, "--public-key", str(tmp_path / "now.pem")]) == 1
    assert "first bad sequence number 1" in capsys.readouterr().out
    assert main(["audit", "verify", export, "--public-key", str(tmp_path / "all.pem")]) == 0
    assert "verifies" in capsys.readouterr().out


def test_when_a_client_puts_an_identifier_in_a_name_field_then_the_log_records_null(
    tmp_path: Path,
) -> None:
    """Dataset and project names reach the log even on refused calls; identifiers must not."""
    from pseudogate.v1 import dataset_pb2, dataset_pb2_grpc, extract_pb2, extract_pb2_grpc

    data = tmp_path / "data"
    gateway = start_gateway(GatewaySettings(port=0, insecure=True, data_dir=data))
    try:
        with grpc.insecure_channel(gateway.address) as ch:
            with pytest.raises(grpc.RpcError):
                list(extract_pb2_grpc.ExtractServiceStub(ch).CreateExtract(
                    extract_pb2.CreateExtractRequest(project="943-476-5919")
                ))
            header = dataset_pb2.SubmissionHeader(
                dataset="ll112ab", policy="gp-ingest", organisation="gp-denbigh"
            )
            with pytest.raises(grpc.RpcError):
                dataset_pb2_grpc.DatasetServiceStub(ch).SubmitDataset(
                    iter([dataset_pb2.SubmitDatasetRequest(header=header)])
                )
    finally:
        gateway.stop(grace=None)
    events = _events(data)
    assert [(e["method"].rsplit("/", 1)[1], e["project"], e["dataset"]) for e in events] == [
        ("CreateExtract", None, None),
        ("SubmitDataset", None, None),
    ]
    raw = (data / AUDIT_DB_NAME).read_bytes()
    for value in (b"943-476-5919", b"9434765919", b"ll112ab", b"LL11"):
        assert value not in raw
