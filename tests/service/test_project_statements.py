"""A project's public statements (title, purpose, legal basis, public benefit) over gRPC and the
CLI, against a real gateway, through to its audit event and the public register."""

from __future__ import annotations

import html
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from pseudogate.audit import AUDIT_DB_NAME
from pseudogate.cli import main
from pseudogate.core.arrow_ipc import ipc_stream_bytes, text_table
from pseudogate.core.statements import STATEMENT_FIELDS, STATEMENT_LIMITS
from pseudogate.service.app import GatewaySettings, start_gateway
from pseudogate.service.server import GatewayServer
from pseudogate.tools.demo import GP_POLICY
from pseudogate.v1 import admin_pb2, admin_pb2_grpc, dataset_pb2_grpc
from tests.statements import STATEMENT_ARGS, STATEMENTS

from .test_edge_validation import gp_table, submission
from .test_linkage_projects import EXPIRES, POLICY

ADMIN = "/pseudogate.v1.AdminService/"
NHS = "9434765919"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("project-statements") / "data"


@pytest.fixture(scope="module")
def gateway(data_dir: Path) -> Iterator[GatewayServer]:
    policies = data_dir.parent / "policies"
    policies.mkdir()
    (policies / "gp-ingest.yaml").write_text(GP_POLICY, encoding="utf-8")
    server = start_gateway(GatewaySettings(port=0, insecure=True, data_dir=data_dir,
                                           policies=policies))
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


def _request(project: str, **statements: str) -> admin_pb2.CreateProjectRequest:
    return admin_pb2.CreateProjectRequest(
        project=project, researcher="uni", datasets=["gp"], policy_yaml=POLICY, expires=EXPIRES,
        **{**STATEMENTS, **statements},
    )


def _refusal(admin: admin_pb2_grpc.AdminServiceStub, request: admin_pb2.CreateProjectRequest) -> str:
    with pytest.raises(grpc.RpcError) as caught:
        admin.CreateProject(request)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    return caught.value.details() or ""


@pytest.mark.parametrize("name", STATEMENT_FIELDS)
@pytest.mark.parametrize("value", ["", "   \n "], ids=["empty", "blank"])
def test_when_a_statement_is_missing_then_create_project_names_it(
    admin: admin_pb2_grpc.AdminServiceStub, name: str, value: str
) -> None:
    details = _refusal(admin, _request(f"missing-{name}", **{name: value}))
    assert details.startswith(f"{name}: ") and "is required" in details
    assert name.replace("_", " ") in details


def test_when_every_statement_is_missing_then_the_first_is_named(
    admin: admin_pb2_grpc.AdminServiceStub,
) -> None:
    request = admin_pb2.CreateProjectRequest(
        project="bare", researcher="uni", datasets=["gp"], policy_yaml=POLICY, expires=EXPIRES
    )
    assert _refusal(admin, request) == "title: the project's title is required"


@pytest.mark.parametrize("name", STATEMENT_FIELDS)
def test_when_a_statement_is_too_long_then_it_is_refused_and_at_the_limit_accepted(
    admin: admin_pb2_grpc.AdminServiceStub, name: str
) -> None:
    limit = STATEMENT_LIMITS[name]
    details = _refusal(admin, _request(f"long-{name}", **{name: "a" * (limit + 1)}))
    assert details == f"{name}: the project's {name.replace('_', ' ')} is longer than {limit} characters"
    reply = admin.CreateProject(_request(f"limit-{name}".replace("_", "-"), **{name: "a" * limit}))
    assert reply.project == f"limit-{name}".replace("_", "-")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("title", f"Follow-up of {NHS}"),
        ("title", "Study of 943 476 5919"),
        ("purpose", "Write to ann.lee@example.org about her care"),
        ("legal_basis", "Consent signed at LL11 2AB"),
        ("public_benefit", "Helps ll112ab residents"),
    ],
)
def test_when_a_statement_holds_an_identifier_then_it_is_refused_without_the_value(
    admin: admin_pb2_grpc.AdminServiceStub, name: str, value: str
) -> None:
    details = _refusal(admin, _request("identifier", **{name: value}))
    assert details.startswith(f"{name}: ") and "NHS number, a postcode or an email" in details
    for part in value.split():
        if any(c.isdigit() for c in part) or "@" in part:
            assert part not in details


@pytest.mark.parametrize(
    ("name", "value"),
    [("title", "Two\nlines"), ("legal_basis", "Art. 6\rx"), ("purpose", "tab\there"),
     ("public_benefit", "bidi \u202e txet"), ("purpose", "nul \x00")],
)
def test_when_a_statement_holds_a_control_character_then_it_is_refused(
    admin: admin_pb2_grpc.AdminServiceStub, name: str, value: str
) -> None:
    assert "control character" in _refusal(admin, _request("control", **{name: value}))


def test_when_statements_are_accepted_then_they_are_stored_trimmed_and_audited(
    admin: admin_pb2_grpc.AdminServiceStub, data_dir: Path
) -> None:
    given = {
        "title": "  Asthma in children  ",
        "purpose": "Line one.\nLine two: Ünïcode & <tags> are text.",
        "legal_basis": "UK GDPR Art. 6(1)(e) and 9(2)(j)",
        "public_benefit": "Fewer asthma attacks.",
    }
    admin.CreateProject(_request("stated", **given))
    data = data_dir
    with sqlite3.connect(f"file:{data / 'catalog.sqlite3'}?mode=ro", uri=True) as db:
        stored = db.execute(
            "SELECT title, purpose, legal_basis, public_benefit FROM projects WHERE id = 'stated'"
        ).fetchone()
    expected = {k: v.strip() for k, v in given.items()}
    assert dict(zip(STATEMENT_FIELDS, stored, strict=True)) == expected
    with sqlite3.connect(f"file:{data / AUDIT_DB_NAME}?mode=ro", uri=True) as db:
        bodies = [json.loads(b) for (b,) in db.execute("SELECT body FROM events ORDER BY seq")]
    (event,) = [e for e in bodies if e["method"] == ADMIN + "CreateProject"
                and e["project"] == "stated" and e["status"] == "OK"]
    assert {k: event["details"][k] for k in STATEMENT_FIELDS} == expected
    # a refused call records nothing of what it was given
    refused = [e for e in bodies if e["method"] == ADMIN + "CreateProject" and e["status"] != "OK"]
    assert refused and all("details" not in e for e in refused)


def test_when_the_cli_lacks_a_statement_then_argparse_names_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["project", "create", "--server", "127.0.0.1:1", "--insecure", "--id", "x",
            "--researcher", "uni", "--datasets", "gp", "--policy", "p.yaml", "--expires", EXPIRES]
    for index, name in enumerate(STATEMENT_FIELDS):
        flag = "--" + name.replace("_", "-")
        args = list(STATEMENT_ARGS)
        del args[2 * index : 2 * index + 2]
        with pytest.raises(SystemExit) as caught:
            main([*base, *args])
        assert caught.value.code == 2
        err = capsys.readouterr().err
        assert "the following arguments are required" in err and flag in err


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--title", f"Follow-up of {NHS}", "--title: the project's title contains an NHS number"),
        ("--purpose", "", "--purpose: the project's purpose is required"),
        ("--legal-basis", "x" * 501, "--legal-basis: the project's legal basis is longer than 500"),
        ("--public-benefit", "mail ann.lee@example.org",
         "--public-benefit: the project's public benefit contains"),
    ],
)
def test_when_the_cli_gets_a_statement_it_would_refuse_then_it_refuses_before_calling(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str, value: str, message: str
) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text(POLICY, encoding="utf-8")
    code = main(["project", "create", "--server", "127.0.0.1:1", "--insecure", "--id", "x",
                 "--researcher", "uni", "--datasets", "gp", "--policy", str(policy),
                 "--expires", EXPIRES, *STATEMENT_ARGS, flag, value])
    err = capsys.readouterr().err
    assert code == 2 and message in err
    assert "unavailable" not in err.lower()  # refused before any call
    if value:
        assert value not in err and NHS not in err and "ann.lee" not in err


def test_when_the_cli_creates_a_project_then_the_register_publishes_its_statements(
    gateway: GatewayServer, data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text(POLICY, encoding="utf-8")
    stated = {
        "--title": "Asthma <and> air quality",
        "--purpose": "To find out whether air pollution makes asthma worse in children.",
        "--legal-basis": "UK GDPR Art. 6(1)(e) and 9(2)(j)",
        "--public-benefit": "Cleaner air around schools & fewer attacks.",
    }
    code = main(["project", "create", "--server", gateway.address, "--insecure",
                 "--id", "asthma-air", "--researcher", "uni", "--datasets", "gp",
                 "--policy", str(policy), "--expires", EXPIRES,
                 *(part for pair in stated.items() for part in pair)])
    assert code == 0, capsys.readouterr().err
    assert "project asthma-air created" in capsys.readouterr().out

    site = tmp_path / "site"
    assert main(["register", "build", "--data-dir", str(data_dir),
                 "--out", str(site)]) == 0
    page = (site / "projects" / "asthma-air.html").read_text(encoding="utf-8")
    for value in stated.values():
        assert html.escape(value, quote=False) in page
    assert "<and>" not in page and "not recorded" not in page
    assert "<h1" in page and "Asthma &lt;and&gt; air quality" in page.split("<h1", 1)[1]
    doc = json.loads((site / "register.json").read_text(encoding="utf-8"))
    (project,) = [p for p in doc["projects"] if p["id"] == "asthma-air"]
    assert {k: project[k] for k in STATEMENT_FIELDS} == {
        name: stated["--" + name.replace("_", "-")] for name in STATEMENT_FIELDS
    }
    listing = (site / "projects.html").read_text(encoding="utf-8")
    assert "Asthma &lt;and&gt; air quality" in listing
