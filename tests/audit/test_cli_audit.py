"""``pseudogate audit export`` against a real gRPC server, and ``audit verify`` verdicts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest

from pseudogate import cli
from pseudogate.audit import AuditLog
from pseudogate.core.authz import Role
from pseudogate.core.keyring import Signer
from pseudogate.tools.certs import write_dev_certs
from pseudogate.v1 import audit_pb2, audit_pb2_grpc

from .conftest import StepClock, sample_event


def run_cli(monkeypatch: pytest.MonkeyPatch, *argv: str) -> int:
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("audit",))
    return cli.main(list(argv))


class _Audit(audit_pb2_grpc.AuditServiceServicer):
    """A stand-in ListEvents over an AuditLog (the real servicer lives in pseudogate.service)."""

    def __init__(self, log: AuditLog, *, fail_after: int | None = None) -> None:
        self.log = log
        self.fail_after = fail_after

    def ListEvents(
        self, request: audit_pb2.ListEventsRequest, context: grpc.ServicerContext
    ) -> Iterator[audit_pb2.ListEventsResponse]:
        for n, record in enumerate(self.log.records(from_seq=request.from_seq or 1)):
            if self.fail_after is not None and n >= self.fail_after:
                context.abort(grpc.StatusCode.UNAVAILABLE, "gateway going away")
            yield audit_pb2.ListEventsResponse(record_json=json.dumps(record))


def _server(log: AuditLog, creds: grpc.ServerCredentials | None = None, **kw: int) -> tuple[grpc.Server, int]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    audit_pb2_grpc.add_AuditServiceServicer_to_server(_Audit(log, **kw), server)
    if creds is None:
        port = server.add_insecure_port("127.0.0.1:0")
    else:
        port = server.add_secure_port("127.0.0.1:0", creds)
    server.start()
    return server, port


@pytest.fixture
def log(tmp_path: Path, signer: Signer) -> Iterator[AuditLog]:
    with AuditLog.open(
        tmp_path / "audit.sqlite3", signer=signer, clock=StepClock(),
        checkpoint_every=5, checkpoint_seconds=0,
    ) as opened:
        for n in range(12):
            opened.append(sample_event(n, status="OK" if n % 3 else "PERMISSION_DENIED"))
        yield opened


@pytest.fixture
def public_key_file(tmp_path: Path, signer: Signer) -> Path:
    path = tmp_path / "pk.pem"
    path.write_text(signer.public_key_pem())
    return path


def _export(monkeypatch: pytest.MonkeyPatch, port: int, out: Path, *extra: str) -> int:
    return run_cli(
        monkeypatch, "audit", "export", "--server", f"127.0.0.1:{port}", "--output", str(out),
        *(extra or ("--insecure",)),
    )


def test_when_exported_then_the_file_holds_one_record_per_line_and_verifies(
    log: AuditLog, tmp_path: Path, public_key_file: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    server, port = _server(log)
    try:
        out = tmp_path / "audit.jsonl"
        assert _export(monkeypatch, port, out) == 0
    finally:
        server.stop(None)
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["seq"] for r in records if "signature" not in r] == list(range(1, 13))
    assert "signature" in records[-1] and records[-1]["seq"] == 12
    assert "12 events" in capsys.readouterr().out
    assert run_cli(monkeypatch, "audit", "verify", str(out), "--public-key", str(public_key_file)) == 0
    assert "OK" in capsys.readouterr().out


def test_when_exported_over_mtls_with_dev_certs_then_it_works(
    log: AuditLog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    certs = tmp_path / "certs"
    write_dev_certs(certs, [("audit-office", Role.AUDITOR)])
    read = lambda name: (certs / name).read_bytes()
    creds = grpc.ssl_server_credentials(
        [(read("server.key"), read("server.pem"))], root_certificates=read("ca.pem"),
        require_client_auth=True,
    )
    server, port = _server(log, creds)
    try:
        out = tmp_path / "audit.jsonl"
        code = run_cli(
            monkeypatch, "audit", "export", "--server", f"localhost:{port}", "--output", str(out),
            "--ca", str(certs / "ca.pem"), "--cert", str(certs / "audit-office.pem"),
            "--key", str(certs / "audit-office.key"),
        )
    finally:
        server.stop(None)
    assert code == 0 and out.exists()


def test_when_the_stream_breaks_then_no_partial_file_is_left(
    log: AuditLog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server, port = _server(log, fail_after=4)
    try:
        out = tmp_path / "audit.jsonl"
        assert _export(monkeypatch, port, out) == 1
    finally:
        server.stop(None)
    assert "UNAVAILABLE" in capsys.readouterr().err
    assert list(tmp_path.glob("*.jsonl*")) == [] and list(tmp_path.glob(".audit.jsonl*")) == []


def test_when_no_credentials_are_given_then_export_refuses_with_status_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "audit.jsonl"
    assert run_cli(monkeypatch, "audit", "export", "--server", "127.0.0.1:1", "--output", str(out)) == 2
    assert not out.exists()


@pytest.fixture
def export_file(log: AuditLog, tmp_path: Path) -> Path:
    path = tmp_path / "audit.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in log.records()))
    return path


def test_when_an_exported_event_is_edited_then_verify_fails_naming_its_seq(
    export_file: Path, public_key_file: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    lines = export_file.read_text().splitlines()
    record = json.loads(lines[7])
    assert "signature" not in record
    record["organisation"] = "ops"
    lines[7] = json.dumps(record)
    export_file.write_text("\n".join(lines) + "\n")
    code = run_cli(monkeypatch, "audit", "verify", str(export_file), "--public-key", str(public_key_file))
    assert code == 1
    assert f"first bad sequence number {record['seq']}" in capsys.readouterr().out


def test_when_a_line_is_not_utf8_then_verify_fails_cleanly(
    export_file: Path, public_key_file: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = export_file.read_bytes().split(b"\n")
    data[2] = b"\xff\xfe"
    export_file.write_bytes(b"\n".join(data))
    code = run_cli(monkeypatch, "audit", "verify", str(export_file), "--public-key", str(public_key_file))
    assert code == 1
    assert "first bad sequence number 3" in capsys.readouterr().out


def test_when_the_database_itself_is_verified_then_it_reports_ok(
    log: AuditLog, public_key_file: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = run_cli(monkeypatch, "audit", "verify", str(log.path), "--public-key", str(public_key_file))
    assert code == 0
    assert "12 events" in capsys.readouterr().out


def test_when_the_public_key_is_not_pem_then_verify_exits_2(
    export_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("nope")
    assert run_cli(monkeypatch, "audit", "verify", str(export_file), "--public-key", str(bad)) == 2
    assert run_cli(
        monkeypatch, "audit", "verify", str(tmp_path / "missing.jsonl"), "--public-key", str(bad)
    ) == 2


def test_when_the_log_spans_a_key_rotation_then_verify_takes_every_key(
    log: AuditLog, signer: Signer, public_key_file: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    from pseudogate.core.keyring import Keyring, Purpose

    ring = Keyring.generate()
    new = ring.signer(key_id=ring.add(Purpose.SIGNING).id)
    log.close()
    with AuditLog.open(log.path, signer=new, clock=StepClock(), checkpoint_seconds=0) as rotated:
        rotated.append(sample_event())
    new_file = tmp_path / "new.pem"
    new_file.write_text(new.public_key_pem())
    bundle = tmp_path / "both.pem"
    bundle.write_text(public_key_file.read_text() + new_file.read_text())
    db = str(log.path)
    assert run_cli(monkeypatch, "audit", "verify", db, "--public-key", str(public_key_file)) == 1
    assert "signature does not verify" in capsys.readouterr().out
    assert run_cli(
        monkeypatch, "audit", "verify", db,
        "--public-key", str(public_key_file), "--public-key", str(new_file),
    ) == 0
    assert "13 events" in capsys.readouterr().out
    assert run_cli(monkeypatch, "audit", "verify", db, "--public-key", str(bundle)) == 0
    assert "13 events" in capsys.readouterr().out
