"""``pseudogate serve`` as a real process: refusals of weak configurations, warnings, shutdown."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest

from pseudogate.audit import AUDIT_DB_NAME
from pseudogate.cli import main
from pseudogate.tools.demo import GP_POLICY
from pseudogate.v1 import tokenisation_pb2 as pb
from pseudogate.v1 import tokenisation_pb2_grpc as pb_grpc


@pytest.fixture
def policies(tmp_path: Path) -> Path:
    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / "gp-ingest.yaml").write_text(GP_POLICY, encoding="utf-8")
    return folder


def _serve(*args: str) -> int:
    return main(["serve", "--port", "0", *args])


def test_when_neither_mtls_nor_insecure_is_given_then_serve_exits_2_saying_why(
    tmp_path: Path, policies: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _serve("--data-dir", str(tmp_path / "d"), "--policies", str(policies)) == 2
    err = capsys.readouterr().err
    assert "--ca, --cert and --key" in err and "--insecure" in err


def test_when_insecure_is_asked_on_a_non_loopback_address_then_serve_refuses(
    tmp_path: Path, policies: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = _serve("--insecure", "--host", "0.0.0.0", "--data-dir", str(tmp_path / "d"),
                  "--policies", str(policies))
    assert code == 2 and "loopback" in capsys.readouterr().err


def test_when_production_runs_on_the_example_keyring_then_serve_refuses(
    tmp_path: Path, policies: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = _serve("--production", "--ca", "x", "--cert", "y", "--key", "z",
                  "--data-dir", str(tmp_path / "d"), "--policies", str(policies))
    assert code == 2 and "example keyring" in capsys.readouterr().err


def test_when_production_is_asked_with_insecure_then_serve_refuses(
    tmp_path: Path, policies: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = _serve("--production", "--insecure", "--data-dir", str(tmp_path / "d"),
                  "--policies", str(policies))
    assert code == 2 and "--production refuses --insecure" in capsys.readouterr().err


def test_when_production_keys_are_cleartext_then_serve_refuses(
    tmp_path: Path, policies: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keyring = tmp_path / "keyring.json"
    assert main(["keys", "generate", "--out", str(keyring)]) == 0
    code = _serve("--production", "--keyring", str(keyring), "--ca", "x", "--cert", "y",
                  "--key", "z", "--data-dir", str(tmp_path / "d"), "--policies", str(policies))
    assert code == 2 and "cleartext key material" in capsys.readouterr().err


def test_when_a_registered_policy_is_invalid_then_serve_stops_naming_file_and_column(
    tmp_path: Path, policies: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (policies / "broken.yaml").write_text(
        "version: 1\nname: broken\ncolumns:\n  nhs_number: {action: shred}\n", encoding="utf-8"
    )
    code = _serve("--insecure", "--data-dir", str(tmp_path / "d"), "--policies", str(policies))
    err = capsys.readouterr().err
    assert code == 2 and "broken.yaml" in err and "nhs_number" in err


def test_when_serve_runs_as_a_process_then_it_serves_warns_and_checkpoints_at_shutdown(
    tmp_path: Path, policies: Path
) -> None:
    ready = tmp_path / "ready"
    data = tmp_path / "data"
    proc = subprocess.Popen(
        [sys.executable, "-m", "pseudogate", "serve", "--insecure", "--port", "0",
         "--data-dir", str(data), "--policies", str(policies), "--ready-file", str(ready)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline = time.monotonic() + 60
        while not ready.exists() or not ready.read_text().strip():
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.1)
        port = int(ready.read_text())
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            reply = pb_grpc.TokenisationServiceStub(ch).Tokenise(
                pb.TokeniseRequest(domain="person", values=["943 476 5919"]), timeout=20
            )
        assert reply.tokens[0].startswith("example-link_")
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "EXAMPLE keyring" in err and "--insecure" in err
    assert "9434765919" not in out + err and "943 476 5919" not in out + err
    with sqlite3.connect(data / AUDIT_DB_NAME) as db:
        (last_event,) = db.execute("SELECT max(seq) FROM events").fetchone()
        (last_checkpoint,) = db.execute("SELECT max(seq) FROM checkpoints").fetchone()
        body = json.loads(db.execute("SELECT body FROM events WHERE seq = 1").fetchone()[0])
    assert last_event == last_checkpoint == 1, "shutdown signs a checkpoint over the last event"
    assert body["organisation"] == "insecure" and body["role"] == "insecure"


def test_when_the_policies_folder_is_empty_then_tokenisation_serves_and_submissions_are_refused(
    tmp_path: Path,
) -> None:
    from pseudogate.service.app import GatewaySettings, start_gateway
    from pseudogate.v1 import dataset_pb2, dataset_pb2_grpc

    (tmp_path / "empty").mkdir()
    gateway = start_gateway(
        GatewaySettings(port=0, insecure=True, data_dir=tmp_path / "d", policies=tmp_path / "empty")
    )
    try:
        with grpc.insecure_channel(gateway.address) as ch:
            reply = pb_grpc.TokenisationServiceStub(ch).Tokenise(
                pb.TokeniseRequest(domain="person", values=["9434765919"])
            )
            assert reply.tokens[0].startswith("example-link_")
            header = dataset_pb2.SubmissionHeader(dataset="d", policy="any", organisation="o")
            with pytest.raises(grpc.RpcError) as err:
                dataset_pb2_grpc.DatasetServiceStub(ch).SubmitDataset(
                    iter([dataset_pb2.SubmitDatasetRequest(header=header)])
                )
        assert err.value.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT)
    finally:
        gateway.stop(grace=None)
