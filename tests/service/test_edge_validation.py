"""Inputs validated at the edge, over gRPC against a real gateway (issue 14 #4, #9, #11)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import grpc
import pyarrow as pa
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from pseudogate.core.arrow_ipc import ipc_stream_bytes, text_table
from pseudogate.service.app import GatewaySettings, start_gateway
from pseudogate.service.server import GatewayServer
from pseudogate.tools.demo import GP_POLICY
from pseudogate.tools.synthetic import make_people
from pseudogate.v1 import admin_pb2, admin_pb2_grpc, dataset_pb2, dataset_pb2_grpc
from tests.statements import STATEMENT_ARGS, STATEMENTS

from ..anonymity.test_policy_bounds import DEEP_FLOW, HUGE_K

EXPIRES = (dt.date.today() + dt.timedelta(days=30)).isoformat()
PEOPLE = make_people(3, seed=5)


def gp_table() -> dict[str, list[str]]:
    return {
        "nhs_number": [p.nhs_number for p in PEOPLE],
        "given_name": [p.given_name for p in PEOPLE],
        "family_name": [p.family_name for p in PEOPLE],
        "date_of_birth": [p.date_of_birth for p in PEOPLE],
        "sex": [p.sex for p in PEOPLE],
        "postcode": [p.postcode for p in PEOPLE],
        "diagnosis": ["D1"] * len(PEOPLE),
    }


def submission(dataset: str, organisation: str, payload: bytes) -> Iterator[object]:
    yield dataset_pb2.SubmitDatasetRequest(header=dataset_pb2.SubmissionHeader(
        dataset=dataset, policy="gp-ingest", organisation=organisation))
    yield dataset_pb2.SubmitDatasetRequest(arrow_ipc=payload)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    base = tmp_path_factory.mktemp("edge")
    (base / "policies").mkdir()
    (base / "policies" / "gp-ingest.yaml").write_text(GP_POLICY, encoding="utf-8")
    server = start_gateway(GatewaySettings(port=0, insecure=True, data_dir=base / "data",
                                           policies=base / "policies"))
    try:
        with grpc.insecure_channel(server.address) as ch:
            dataset_pb2_grpc.DatasetServiceStub(ch).SubmitDataset(
                submission("gp", "gp-denbigh", ipc_stream_bytes(text_table(gp_table()))))
        yield server
    finally:
        server.stop(grace=None)


@pytest.fixture
def chan(gateway: GatewayServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(gateway.address) as ch:
        yield ch


@pytest.mark.parametrize("text", [DEEP_FLOW, HUGE_K], ids=["nested 50,000 deep", "100,000-digit k"])
def test_when_a_project_policy_is_unbounded_then_create_project_is_invalid_argument(
    chan: grpc.Channel, text: str
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        admin_pb2_grpc.AdminServiceStub(chan).CreateProject(admin_pb2.CreateProjectRequest(
            **STATEMENTS,
            project="p1", researcher="uni", datasets=["gp"], policy_yaml=text, expires=EXPIRES))
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert (caught.value.details() or "").startswith("policy for project 'p1' line ")


@pytest.mark.parametrize("researcher", ["UNI-X", "uni-x\x00", "../uni"])
def test_when_the_researcher_cannot_be_a_certificate_organisation_then_invalid_argument(
    chan: grpc.Channel, researcher: str
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        admin_pb2_grpc.AdminServiceStub(chan).CreateProject(admin_pb2.CreateProjectRequest(
            **STATEMENTS,
            project="p2", researcher=researcher, datasets=["gp"],
            policy_yaml="version: 1\nname: x\ncolumns:\n  person: {action: keep}\n",
            expires=EXPIRES))
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "researcher organisation must be" in (caught.value.details() or "")
    assert researcher not in (caught.value.details() or "")


def test_when_an_insecure_submission_names_a_malformed_organisation_then_invalid_argument(
    chan: grpc.Channel,
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        dataset_pb2_grpc.DatasetServiceStub(chan).SubmitDataset(
            submission("gp2", "GP Denbigh", ipc_stream_bytes(text_table(gp_table()))))
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "submitting organisation must be" in (caught.value.details() or "")


def test_when_a_submission_holds_invalid_utf8_then_bad_request_names_row_and_column(
    chan: grpc.Channel,
) -> None:
    columns = gp_table()
    arrays = {k: pa.array([x.encode() for x in v], pa.binary()).view(pa.string())
              for k, v in columns.items()}
    arrays["diagnosis"] = pa.array([b"D1", b"D\xff", b"D3"], pa.binary()).view(pa.string())
    payload = ipc_stream_bytes(pa.table(arrays))
    with pytest.raises(grpc.RpcError) as caught:
        dataset_pb2_grpc.DatasetServiceStub(chan).SubmitDataset(
            submission("gp", "gp-denbigh", payload))
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(caught.value)
    assert status is not None
    bad = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad)
    assert [(v.field, v.description) for v in bad.field_violations] == [
        ("row 2 column diagnosis", "invalid_utf8")
    ]


def _bad_utf8_request() -> bytes:
    """A TokeniseRequest (domain "person") whose 2nd and 4th values are not UTF-8."""
    def field(number: int, raw: bytes) -> bytes:
        return bytes([number << 3 | 2, len(raw)]) + raw

    values = [b"4010232137", b"\xff\xfe", b"9990000018", b"D\xc3"]
    return field(1, b"person") + b"".join(field(2, v) for v in values)


def test_when_a_tokenise_request_holds_strings_that_are_not_utf8_then_rows_are_reported(
    chan: grpc.Channel,
) -> None:
    call = chan.unary_unary("/pseudogate.v1.TokenisationService/Tokenise",
                            request_serializer=lambda b: b, response_deserializer=lambda b: b)
    with pytest.raises(grpc.RpcError) as caught:
        call(_bad_utf8_request(), timeout=10)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(caught.value)
    assert status is not None
    bad = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad)
    assert [(v.field, v.description) for v in bad.field_violations] == [
        ("row 2 column values", "invalid_utf8"), ("row 4 column values", "invalid_utf8")
    ]


def test_when_a_request_is_not_protobuf_at_all_then_it_is_still_plainly_malformed(
    chan: grpc.Channel,
) -> None:
    call = chan.unary_unary("/pseudogate.v1.TokenisationService/Tokenise",
                            request_serializer=lambda b: b, response_deserializer=lambda b: b)
    with pytest.raises(grpc.RpcError) as caught:
        call(b"\x0f\xff\xff", timeout=10)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "malformed request message" in (caught.value.details() or "")


@pytest.mark.parametrize("researcher", ["UNI-X", "../uni", "943-476-5919"])
def test_when_project_create_names_a_malformed_researcher_then_exit_2_naming_the_field(
    gateway: GatewayServer, tmp_path: Path, capsys: pytest.CaptureFixture[str], researcher: str
) -> None:
    from pseudogate.cli import main

    policy = tmp_path / "extract.yaml"
    policy.write_text("version: 1\nname: x\ncolumns:\n  person: {action: keep}\n", encoding="utf-8")
    code = main(["project", "create", *STATEMENT_ARGS, "--server", gateway.address, "--insecure", "--id", "p3",
                 "--researcher", researcher, "--datasets", "gp", "--policy", str(policy),
                 "--expires", EXPIRES])
    err = capsys.readouterr().err
    assert code == 2 and "--researcher" in err and researcher not in err
