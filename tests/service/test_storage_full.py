"""Disk full over gRPC: RESOURCE_EXHAUSTED "storage full" to the caller, the full path in the
gateway's log, nothing partial left (issue 14 #6)."""

from __future__ import annotations

import errno
import logging
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from pseudogate.audit import AuditLog
from pseudogate.core.arrow_ipc import ipc_stream_bytes, text_table
from pseudogate.core.errors import storage_full
from pseudogate.gateway import Store
from pseudogate.service.app import GatewaySettings, start_gateway
from pseudogate.service.server import GatewayServer
from pseudogate.tools.demo import GP_POLICY
from pseudogate.v1 import admin_pb2, admin_pb2_grpc, dataset_pb2_grpc

from .test_edge_validation import gp_table, submission


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs (needs root); skipped where it cannot be mounted."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (exit {done.returncode})")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(disk: Path) -> Path:
    """Fill the file system; returns the filler file (delete it to make room again)."""
    filler = disk / "filler"
    with filler.open("wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


def test_when_the_data_disk_is_full_then_a_submission_is_resource_exhausted_and_leaves_nothing(
    small_disk: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    (small_disk / "policies").mkdir()
    (small_disk / "policies" / "gp-ingest.yaml").write_text(GP_POLICY, encoding="utf-8")
    data = small_disk / "data"
    gateway = start_gateway(GatewaySettings(port=0, insecure=True, data_dir=data,
                                            policies=small_disk / "policies"))
    try:
        table = gp_table()
        big = {k: v * 2000 for k, v in table.items()}  # several hundred KiB of Parquet
        filler = _fill(small_disk)
        with grpc.insecure_channel(gateway.address) as ch, caplog.at_level(logging.INFO):
            stub = dataset_pb2_grpc.DatasetServiceStub(ch)
            with pytest.raises(grpc.RpcError) as caught:
                stub.SubmitDataset(submission("gp", "gp-denbigh",
                                              ipc_stream_bytes(text_table(big))))
            assert caught.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
            assert (caught.value.details() or "").startswith("storage full")
            assert str(small_disk) not in (caught.value.details() or "")
            full = [r.getMessage() for r in caplog.records if "storage full" in r.getMessage()]
            assert full and all(str(data) in m for m in full), full
            assert not any(r.getMessage().startswith("unexpected") for r in caplog.records)
            assert list((data / "tmp").iterdir()) == []
            assert list((data / "datasets").rglob("*.parquet")) == []
            filler.unlink()  # room again: the gateway carries on
            reply = stub.SubmitDataset(submission("gp", "gp-denbigh",
                                                  ipc_stream_bytes(text_table(table))))
            assert (reply.version, reply.rows) == (1, len(table["sex"]))
    finally:
        gateway.stop(grace=None)


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[GatewayServer]:
    server = start_gateway(GatewaySettings(port=0, insecure=True, data_dir=tmp_path / "data"))
    try:
        yield server
    finally:
        server.stop(grace=None)


def test_when_enospc_escapes_a_servicer_then_resource_exhausted_not_internal(
    gateway: GatewayServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", "/srv/data/tmp/x")

    monkeypatch.setattr(Store, "linkage_report", full)
    with grpc.insecure_channel(gateway.address) as ch, caplog.at_level(logging.INFO), \
            pytest.raises(grpc.RpcError) as caught:
        admin_pb2_grpc.AdminServiceStub(ch).LinkageReport(admin_pb2.LinkageReportRequest())
    assert caught.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "storage full: cannot write /srv/data/tmp/x (No space left on device)" in caplog.text
    assert "unexpected OSError" not in caplog.text


def test_when_the_audit_log_is_full_then_the_call_is_resource_exhausted_and_the_log_says_why(
    gateway: GatewayServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    def full(self: AuditLog, event: object) -> None:
        raise storage_full(self.path, OSError(errno.ENOSPC, "No space left on device"))

    monkeypatch.setattr(AuditLog, "append", full)
    with grpc.insecure_channel(gateway.address) as ch, caplog.at_level(logging.INFO), \
            pytest.raises(grpc.RpcError) as caught:
        admin_pb2_grpc.AdminServiceStub(ch).ListKeys(admin_pb2.ListKeysRequest())
    assert caught.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "storage full" in (caught.value.details() or "")
    assert "audit write failed: storage full at " in caplog.text
    assert "audit.sqlite3" in caplog.text
