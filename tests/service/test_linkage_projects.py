"""Linkage methods of projects over gRPC and the CLI, against a real gateway."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from pseudogate.cli import main
from pseudogate.core.arrow_ipc import ipc_stream_bytes, text_table
from pseudogate.service.app import GatewaySettings, start_gateway
from pseudogate.service.server import GatewayServer
from pseudogate.tools.demo import GP_POLICY
from pseudogate.v1 import admin_pb2, admin_pb2_grpc, dataset_pb2_grpc
from tests.statements import STATEMENT_ARGS, STATEMENTS

from .test_edge_validation import gp_table, submission

EXPIRES = (dt.date.today() + dt.timedelta(days=30)).isoformat()
POLICY = """\
version: 1
name: gp-only
columns:
  person:           {action: keep}
  gp.date_of_birth: {action: drop}
  gp.sex:           {action: drop}
  gp.postcode:      {action: drop}
  gp.diagnosis:     {action: keep}
privacy: {k: 2, suppression_limit: 1}
"""


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    base = tmp_path_factory.mktemp("linkage-projects")
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
def admin(gateway: GatewayServer) -> Iterator[admin_pb2_grpc.AdminServiceStub]:
    with grpc.insecure_channel(gateway.address) as ch:
        yield admin_pb2_grpc.AdminServiceStub(ch)


def _request(project: str, **linkage: object) -> admin_pb2.CreateProjectRequest:
    return admin_pb2.CreateProjectRequest(**STATEMENTS, project=project, researcher="uni", datasets=["gp"],
                                          policy_yaml=POLICY, expires=EXPIRES, **linkage)


def test_when_a_project_is_created_without_a_method_then_the_reply_says_exact(
    admin: admin_pb2_grpc.AdminServiceStub,
) -> None:
    reply = admin.CreateProject(_request("plain"))
    assert (reply.linkage, reply.linkage_threshold) == ("exact", 0.0)


def test_when_a_probabilistic_project_is_created_then_the_reply_echoes_method_and_threshold(
    admin: admin_pb2_grpc.AdminServiceStub,
) -> None:
    reply = admin.CreateProject(_request("prob-default", linkage="probabilistic"))
    assert (reply.linkage, reply.linkage_threshold) == ("probabilistic", 0.5)
    reply = admin.CreateProject(_request("prob-09", linkage="probabilistic",
                                         linkage_threshold=0.9))
    assert (reply.linkage, reply.linkage_threshold) == ("probabilistic", 0.9)


@pytest.mark.parametrize(
    ("linkage", "message"),
    [
        ({"linkage": "probabilistic", "linkage_threshold": 1.5}, "strictly between 0 and 1"),
        ({"linkage": "exact", "linkage_threshold": 0.5}, "probabilistic linkage only"),
        ({"linkage_threshold": 0.5}, "probabilistic linkage only"),
        ({"linkage": "Fuzzy"}, "unknown linkage method"),
    ],
)
def test_when_linkage_options_do_not_fit_then_create_project_is_invalid_argument(
    admin: admin_pb2_grpc.AdminServiceStub, linkage: dict[str, object], message: str
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        admin.CreateProject(_request("refused", **linkage))
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert message in (caught.value.details() or "")
    assert "Fuzzy" not in (caught.value.details() or "")


def test_when_the_cli_creates_a_probabilistic_project_then_it_prints_the_method(
    gateway: GatewayServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text(POLICY, encoding="utf-8")
    args = ["project", "create", *STATEMENT_ARGS, "--server", gateway.address, "--insecure", "--researcher",
            "uni", "--datasets", "gp", "--policy", str(policy), "--expires", EXPIRES]
    assert main([*args, "--id", "cli-prob", "--linkage", "probabilistic",
                 "--linkage-threshold", "0.8"]) == 0
    assert "linkage probabilistic (threshold 0.8)" in capsys.readouterr().out
    assert main([*args, "--id", "cli-exact"]) == 0
    assert capsys.readouterr().out.rstrip().endswith("linkage exact")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--linkage-threshold", "0.8"], "--linkage-threshold applies to --linkage probabilistic"),
        (["--linkage", "probabilistic", "--linkage-threshold", "0"], "strictly between 0 and 1"),
        (["--linkage", "probabilistic", "--linkage-threshold", "nan"], "strictly between 0 and 1"),
    ],
)
def test_when_the_cli_gets_linkage_options_that_do_not_fit_then_it_refuses_before_calling(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text(POLICY, encoding="utf-8")
    code = main(["project", "create", *STATEMENT_ARGS, "--server", "127.0.0.1:1", "--insecure", "--id", "x",
                 "--researcher", "uni", "--datasets", "gp", "--policy", str(policy),
                 "--expires", EXPIRES, *extra])
    assert code == 2 and message in capsys.readouterr().err


def test_when_the_cli_gets_an_unknown_method_then_argparse_lists_the_choices(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["project", "create", *STATEMENT_ARGS, "--id", "x", "--researcher", "uni", "--datasets", "gp",
              "--policy", "p.yaml", "--expires", EXPIRES, "--linkage", "fuzzy"])
    assert caught.value.code == 2
    assert "choose from 'exact', 'probabilistic'" in capsys.readouterr().err
