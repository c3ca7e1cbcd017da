"""The register kept up to date beside a running gateway (``serve --register-dir``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc

from pseudogate.register import PublicKey
from pseudogate.register.publisher import RegisterPublisher
from pseudogate.service.app import GatewaySettings, start_gateway
from pseudogate.tools.demo import GP_POLICY
from pseudogate.v1 import admin_pb2, admin_pb2_grpc, audit_pb2, audit_pb2_grpc


def test_when_the_store_changes_then_the_publisher_rebuilds_and_otherwise_not(
    tmp_path: Path, public_keys: list[PublicKey]
) -> None:
    data, site = tmp_path / "data", tmp_path / "site"
    gateway = start_gateway(GatewaySettings(port=0, insecure=True, data_dir=data))
    try:
        publisher = RegisterPublisher(data_dir=data, out=site, public_keys=public_keys)
        assert publisher.refresh() and (site / "register.json").is_file()
        assert not publisher.refresh()  # nothing changed
        with grpc.insecure_channel(gateway.address) as channel:
            admin_pb2_grpc.AdminServiceStub(channel).ImportOptOuts(
                admin_pb2.ImportOptOutsRequest(nhs_numbers=["943 476 5919"])
            )
            assert publisher.refresh()
            doc = json.loads((site / "register.json").read_text(encoding="utf-8"))
            assert doc["optout_snapshots"][0]["people"] == "<10"
            audit_pb2_grpc.AuditServiceStub(channel).GetCheckpoint(
                audit_pb2.GetCheckpointRequest()
            )
            assert publisher.refresh()
        assert publisher.builds == 3
        doc = json.loads((site / "register.json").read_text(encoding="utf-8"))
        assert doc["audit"]["latest_checkpoint"] is not None
    finally:
        gateway.stop(grace=None)


def test_when_a_build_fails_then_the_publisher_logs_it_and_keeps_the_old_site(
    tmp_path: Path, public_keys: list[PublicKey]
) -> None:
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "mine.txt").write_text("not a register", encoding="utf-8")
    publisher = RegisterPublisher(
        data_dir=tmp_path / "missing", out=tmp_path / "site", public_keys=public_keys
    )
    assert not publisher.refresh()
    assert (tmp_path / "site" / "mine.txt").is_file()


def test_when_serve_runs_with_a_register_dir_then_the_register_follows_its_changes(
    tmp_path: Path,
) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "gp-ingest.yaml").write_text(GP_POLICY, encoding="utf-8")
    ready, data, site = tmp_path / "ready", tmp_path / "data", tmp_path / "site"
    proc = subprocess.Popen(
        [sys.executable, "-m", "pseudogate", "serve", "--insecure", "--port", "0",
         "--data-dir", str(data), "--policies", str(policies), "--ready-file", str(ready),
         "--register-dir", str(site)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )

    def register() -> dict[str, object]:
        deadline = time.monotonic() + 30
        while not (site / "register.json").is_file():
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "no register was built"
            time.sleep(0.1)
        return dict(json.loads((site / "register.json").read_text(encoding="utf-8")))

    try:
        deadline = time.monotonic() + 60
        while not ready.exists() or not ready.read_text().strip():
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.1)
        assert register()["optout_snapshots"] == []
        with grpc.insecure_channel(f"127.0.0.1:{int(ready.read_text())}") as channel:
            admin_pb2_grpc.AdminServiceStub(channel).ImportOptOuts(
                admin_pb2.ImportOptOutsRequest(nhs_numbers=["943 476 5919"]), timeout=20
            )
        deadline = time.monotonic() + 30
        while not register()["optout_snapshots"]:
            assert time.monotonic() < deadline, "the register did not follow the opt-out import"
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "register kept up to date" in out
    checkpoint = json.loads((site / "checkpoint.json").read_text(encoding="utf-8"))
    assert checkpoint["seq"] >= 1  # the shutdown checkpoint is in the register too
