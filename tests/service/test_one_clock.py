"""One clock, wired from GatewaySettings: every time a gateway stamps comes from it."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path

import grpc

from pseudogate.audit import AUDIT_DB_NAME
from pseudogate.service.app import GatewaySettings, start_gateway
from pseudogate.store.catalog import Catalog
from pseudogate.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    dataset_pb2,
    dataset_pb2_grpc,
    extract_pb2,
    extract_pb2_grpc,
)
from tests.statements import STATEMENTS
from tests.store.helpers import GP_POLICY, gp_columns, ipc, people

MOMENT = dt.datetime(2025, 6, 1, 10, 30, 15, 125_999, tzinfo=dt.timezone(dt.timedelta(hours=1)))
SECONDS = "2025-06-01T09:30:15Z"  # catalog and manifest times: whole seconds, UTC
MILLISECONDS = "2025-06-01T09:30:15.125Z"  # audit event times: milliseconds, UTC
PROJECT_POLICY = """\
version: 1
name: study
columns:
  person:                     {action: keep}
  gp_diagnoses.email:         {action: drop}
  gp_diagnoses.date_of_birth: {action: drop}
  gp_diagnoses.sex:           {action: drop}
  gp_diagnoses.diagnosis:     {action: keep}
privacy: {k: 2}
"""


def _fixed() -> dt.datetime:
    return MOMENT


def test_when_a_fixed_clock_is_injected_then_every_stamped_time_is_that_moment(
    tmp_path: Path,
) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "gp.yaml").write_text(GP_POLICY, encoding="utf-8")
    data = tmp_path / "data"
    gateway = start_gateway(
        GatewaySettings(port=0, insecure=True, data_dir=data, policies=policies, clock=_fixed)
    )
    try:
        with grpc.insecure_channel(gateway.address) as channel:
            header = dataset_pb2.SubmissionHeader(
                dataset="gp_diagnoses", policy="gp", organisation="gp-a"
            )
            submitted = dataset_pb2_grpc.DatasetServiceStub(channel).SubmitDataset(
                iter([dataset_pb2.SubmitDatasetRequest(header=header),
                      dataset_pb2.SubmitDatasetRequest(arrow_ipc=ipc(gp_columns(people(6))))])
            )
            assert submitted.version == 1
            admin_pb2_grpc.AdminServiceStub(channel).CreateProject(
                admin_pb2.CreateProjectRequest(
                    **STATEMENTS,
                    project="study", researcher="uni-bangor", datasets=["gp_diagnoses"],
                    policy_yaml=PROJECT_POLICY, expires="2025-06-01",  # today by the clock
                )
            )
            replies = list(extract_pb2_grpc.ExtractServiceStub(channel).CreateExtract(
                extract_pb2.CreateExtractRequest(project="study")
            ))
    finally:
        gateway.stop(grace=None)
    manifest = json.loads(replies[-1].manifest_json)
    assert manifest["created_at"] == SECONDS
    with sqlite3.connect(f"file:{data / Catalog.FILE_NAME}?mode=ro", uri=True) as db:
        assert db.execute("SELECT created_at FROM versions").fetchall() == [(SECONDS,)]
        assert db.execute("SELECT created_at FROM projects").fetchall() == [(SECONDS,)]
    with sqlite3.connect(data / AUDIT_DB_NAME) as db:
        events = [json.loads(b) for (b,) in db.execute("SELECT body FROM events ORDER BY seq")]
    assert {e["method"].rsplit("/", 1)[1] for e in events} >= {
        "SubmitDataset", "CreateProject", "CreateExtract"
    }
    assert {e["time"] for e in events} == {MILLISECONDS}


def test_when_the_clock_passes_the_expiry_day_then_the_extract_is_refused(tmp_path: Path) -> None:
    """The expiry check reads the same clock (it used to have its own ``today``)."""
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "gp.yaml").write_text(GP_POLICY, encoding="utf-8")
    now = [MOMENT]
    gateway = start_gateway(GatewaySettings(port=0, insecure=True, data_dir=tmp_path / "data",
                                            policies=policies, clock=lambda: now[0]))
    try:
        with grpc.insecure_channel(gateway.address) as channel:
            header = dataset_pb2.SubmissionHeader(
                dataset="gp_diagnoses", policy="gp", organisation="gp-a"
            )
            dataset_pb2_grpc.DatasetServiceStub(channel).SubmitDataset(
                iter([dataset_pb2.SubmitDatasetRequest(header=header),
                      dataset_pb2.SubmitDatasetRequest(arrow_ipc=ipc(gp_columns(people(6))))])
            )
            admin_pb2_grpc.AdminServiceStub(channel).CreateProject(
                admin_pb2.CreateProjectRequest(
                    **STATEMENTS,
                    project="study", researcher="uni-bangor", datasets=["gp_diagnoses"],
                    policy_yaml=PROJECT_POLICY, expires="2025-06-01",
                )
            )
            now[0] = MOMENT + dt.timedelta(days=1)
            stub = extract_pb2_grpc.ExtractServiceStub(channel)
            try:
                list(stub.CreateExtract(extract_pb2.CreateExtractRequest(project="study")))
            except grpc.RpcError as refused:
                assert refused.code() is grpc.StatusCode.FAILED_PRECONDITION
                assert "expired on 2025-06-01" in (refused.details() or "")
            else:
                raise AssertionError("an expired project's extract was served")
    finally:
        gateway.stop(grace=None)
