"""People's rights through real mTLS servers: requests that need two different people.

A subject access request for someone in two datasets and one extract, approved by an auditor
of another organisation, names exactly those; self-approval, approval by a second identity of
the same organisation, and approval after expiry are refused; a re-identification gives each
provider only its own records, matching an independent recomputation; every byte the gateway
wrote and every response is scanned for raw NHS numbers; the audit log verifies with every step.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pyarrow as pa
import pytest

from pseudogate.audit import AUDIT_DB_NAME
from pseudogate.audit.verify import verify_database
from pseudogate.core.authz import Role
from pseudogate.core.keyring import Keyring
from pseudogate.core.manifest import load_public_key_pem
from pseudogate.core.rights import RightsSettings
from pseudogate.service.app import GatewaySettings, start_gateway
from pseudogate.service.server import GatewayServer, TlsFiles
from pseudogate.tools.certs import write_dev_certs
from pseudogate.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    audit_pb2,
    audit_pb2_grpc,
    dataset_pb2,
    dataset_pb2_grpc,
    extract_pb2,
    extract_pb2_grpc,
    rights_pb2,
    rights_pb2_grpc,
)
from tests.statements import STATEMENTS
from tests.store.helpers import (
    COUNCIL_POLICY,
    GP_POLICY,
    Clock,
    council_columns,
    gp_columns,
    ipc,
    keyring_document,
    linkage_token,
    people,
    project_token,
)

C = grpc.StatusCode
GP, COUNCIL, UNI, AUDIT, OPS = "gp-denbigh", "council-conwy", "uni-bangor", "audit-office", "ops"
OTHER_UNI = "uni-cardiff"  # a researcher with no part in the project
OPS_AUDITOR = "ops-as-auditor"  # the ops organisation, in the auditor role (its own folder)
START = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
PROJECT_POLICY = """\
version: 1
name: study
columns:
  person:                     {action: keep}
  gp_diagnoses.email:         {action: drop}
  gp_diagnoses.date_of_birth: {action: drop}
  gp_diagnoses.sex:           {action: drop}
  gp_diagnoses.diagnosis:     {action: keep}
  council_services.service:   {action: keep}
privacy: {k: 2}
"""


@dataclass
class World:
    gateway: GatewayServer
    pki: Path
    data: Path
    clock: Clock
    everyone: list[dict[str, str]]
    gp_people: list[dict[str, str]]
    council_people: list[dict[str, str]]
    responses: list[bytes]

    def channel(self, who: str) -> grpc.Channel:
        folder = self.pki / "ops-auditor" if who == OPS_AUDITOR else self.pki
        name = OPS if who == OPS_AUDITOR else who
        creds = grpc.ssl_channel_credentials(
            root_certificates=(self.pki / "ca.pem").read_bytes(),
            private_key=(folder / f"{name}.key").read_bytes(),
            certificate_chain=(folder / f"{name}.pem").read_bytes(),
        )
        return grpc.secure_channel(f"localhost:{self.gateway.port}", creds)

    def rights(self, who: str, method: str, message: object) -> object:
        with self.channel(who) as ch:
            reply = getattr(rights_pb2_grpc.RightsServiceStub(ch), method)(message, timeout=30)
        self.responses.append(reply.SerializeToString())
        return reply


def _status(call: object) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as info:
        call()  # type: ignore[operator]
    return info.value.code()  # type: ignore[no-any-return]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    pki = tmp_path / "pki"
    write_dev_certs(pki, [(GP, Role.PROVIDER), (COUNCIL, Role.PROVIDER), (UNI, Role.RESEARCHER),
                          (AUDIT, Role.AUDITOR), (OPS, Role.ADMIN), (OTHER_UNI, Role.RESEARCHER)])
    (pki / "ops-auditor").mkdir()
    for name in ("ca.pem", "ca.key", "server.pem", "server.key"):
        shutil.copy(pki / name, pki / "ops-auditor" / name)
    write_dev_certs(pki / "ops-auditor", [(OPS, Role.AUDITOR)])
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "gp.yaml").write_text(GP_POLICY, encoding="utf-8")
    (policies / "council.yaml").write_text(COUNCIL_POLICY, encoding="utf-8")
    keyring = tmp_path / "keyring.json"
    Keyring.from_document(keyring_document()).save(keyring)
    clock = Clock(START)
    gateway = start_gateway(GatewaySettings(
        port=0, data_dir=tmp_path / "data", policies=policies, keyring=keyring, clock=clock,
        tls=TlsFiles(pki / "ca.pem", pki / "server.pem", pki / "server.key"),
        rights=RightsSettings(expiry_days=7, max_tokens=5),
    ))
    everyone = people(8, seed=13)
    w = World(gateway, pki, tmp_path / "data", clock, everyone, everyone[:6], everyone[3:8], [])
    try:
        _submit(w, GP, "gp_diagnoses", "gp", ipc(gp_columns(w.gp_people)))
        _submit(w, COUNCIL, "council_services", "council", ipc(council_columns(w.council_people)))
        with w.channel(OPS) as ch:
            admin_pb2_grpc.AdminServiceStub(ch).CreateProject(admin_pb2.CreateProjectRequest(
                **STATEMENTS,
                project="study", researcher=UNI, datasets=["gp_diagnoses", "council_services"],
                policy_yaml=PROJECT_POLICY, expires="2099-01-01",
            ), timeout=30)
            # everyone[5] opts out before the extract: in the GP data, but left out of it
            admin_pb2_grpc.AdminServiceStub(ch).ImportOptOuts(
                admin_pb2.ImportOptOutsRequest(nhs_numbers=[everyone[5]["nhs_number"]]), timeout=30
            )
        yield w
    finally:
        gateway.stop(grace=None)


def _submit(w: World, org: str, dataset: str, policy: str, payload: bytes) -> None:
    header = dataset_pb2.SubmissionHeader(dataset=dataset, policy=policy, organisation=org)
    with w.channel(org) as ch:
        dataset_pb2_grpc.DatasetServiceStub(ch).SubmitDataset(iter([
            dataset_pb2.SubmitDatasetRequest(header=header),
            dataset_pb2.SubmitDatasetRequest(arrow_ipc=payload),
        ]), timeout=60)


def _extract(w: World) -> tuple[pa.Table, dict]:
    tables, manifest = [], {}
    with w.channel(UNI) as ch:
        for reply in extract_pb2_grpc.ExtractServiceStub(ch).CreateExtract(
            extract_pb2.CreateExtractRequest(project="study"), timeout=60
        ):
            w.responses.append(reply.SerializeToString())
            if reply.manifest_json:
                manifest = json.loads(reply.manifest_json)
            else:
                tables.append(pa.ipc.open_stream(reply.arrow_ipc).read_all())
    return pa.concat_tables(tables), manifest


def _events(w: World) -> list[dict]:
    with sqlite3.connect(w.data / AUDIT_DB_NAME) as db:
        return [json.loads(b) for (b,) in db.execute("SELECT body FROM events ORDER BY seq")]


def _verified(w: World) -> bool:
    """The whole log verifies (events after the last checkpoint counted as unsigned)."""
    public = Keyring.from_document(keyring_document()).signer().public_key_pem()
    report = verify_database(w.data / AUDIT_DB_NAME, load_public_key_pem(public))
    return bool(report.events == len(_events(w)))


def _documented_report() -> dict:
    text = (Path(__file__).resolve().parents[2] / "docs" / "rights.md").read_text(encoding="utf-8")
    block = text.split("### The report (JSON)", 1)[1].split("```json", 1)[1].split("```", 1)[0]
    return dict(json.loads(block))


def _subject_access(w: World, number: str, who: str = OPS) -> str:
    reply = w.rights(who, "RequestSubjectAccess", rights_pb2.RequestSubjectAccessRequest(
        nhs_number=number, reason="Article 15 request received by letter"))
    assert reply.request.status == "pending"
    return str(reply.request.id)


def _scan_for_numbers(w: World) -> None:
    """No raw NHS number (with or without spaces) in any byte written or any response."""
    numbers = [p["nhs_number"] for p in w.everyone]
    spaced = [f"{n[:3]} {n[3:6]} {n[6:]}" for n in numbers]
    blobs = [p.read_bytes() for p in w.data.rglob("*") if p.is_file()]
    blobs += w.responses
    for blob in blobs:
        for n in numbers + spaced:
            assert n.encode() not in blob


def test_when_an_auditor_of_another_organisation_approves_a_subject_access_then_the_report_names_exactly_the_datasets_and_extract(
    world: World, tmp_path: Path
) -> None:
    w = world
    _extract(w)
    both = w.everyone[4]  # in the GP and the council data, in the extract
    opted = w.everyone[5]  # in both too, but opted out before the extract
    rid = _subject_access(w, both["nhs_number"])
    opted_rid = _subject_access(w, opted["nhs_number"])
    for r in (rid, opted_rid):
        approved = w.rights(AUDIT, "ApproveRequest", rights_pb2.ApproveRequestRequest(request=r))
        assert approved.request.status == "approved"
        assert approved.request.approvals == 1
    # A second approval by the same identity counts once.
    again = w.rights(AUDIT, "ApproveRequest", rights_pb2.ApproveRequestRequest(request=rid))
    assert again.request.approvals == 1
    # Only the requester gets the result: not the approver, not a provider.
    with w.channel(AUDIT) as ch:
        assert _status(lambda: rights_pb2_grpc.RightsServiceStub(ch).GetSubjectAccessReport(
            rights_pb2.GetSubjectAccessReportRequest(request=rid), timeout=30)) == C.PERMISSION_DENIED
    reply = w.rights(OPS, "GetSubjectAccessReport", rights_pb2.GetSubjectAccessReportRequest(request=rid))
    report = json.loads(reply.report_json)
    assert [(d["dataset"], d["version"], d["records"], d["organisation"]) for d in report["datasets"]] == [
        ("council_services", 1, 1, COUNCIL), ("gp_diagnoses", 1, 1, GP)]
    assert [p["project"] for p in report["projects"]] == ["study"]
    assert report["projects"][0]["title"] == STATEMENTS["title"]
    (extract,) = report["projects"][0]["extracts"]
    assert extract["outcome"] == "included"
    assert extract["optout_snapshot"] == 1
    # docs/rights.md documents exactly these fields.
    documented = _documented_report()
    assert set(report) == set(documented)
    assert set(report["datasets"][0]) == set(documented["datasets"][0])
    assert set(report["projects"][0]) == set(documented["projects"][0])
    assert set(extract) == set(documented["projects"][0]["extracts"][0])
    # Results are returned once.
    with w.channel(OPS) as ch:
        assert _status(lambda: rights_pb2_grpc.RightsServiceStub(ch).GetSubjectAccessReport(
            rights_pb2.GetSubjectAccessReportRequest(request=rid), timeout=30)) == C.FAILED_PRECONDITION
    status = w.rights(AUDIT, "GetRequest", rights_pb2.GetRequestRequest(request=rid))
    assert status.request.status == "executed"
    # The opted-out person: the extract is listed as left out, with the snapshot.
    opted_report = json.loads(w.rights(OPS, "GetSubjectAccessReport",
                                       rights_pb2.GetSubjectAccessReportRequest(request=opted_rid)).report_json)
    (left_out,) = opted_report["projects"][0]["extracts"]
    assert left_out["outcome"] == "left_out_by_optout"
    assert left_out["optout_snapshot"] == 1
    # Never a token, never a record's content.
    for text in (reply.report_json, json.dumps(opted_report)):
        assert "lk1_" not in text and "pk1_" not in text
        assert "D0" not in text and "S0" not in text
    # The register counts it; the log verifies with every step in it.
    with w.channel(AUDIT) as ch:
        register = json.loads(audit_pb2_grpc.AuditServiceStub(ch).GetRequestRegister(
            audit_pb2.GetRequestRegisterRequest(), timeout=30).register_json)
    assert register == {"months": [
        {"month": "2026-03", "kind": "subject_access", "outcome": "executed", "requests": 2}]}
    steps = [(e["details"]["request_status"], e["status"]) for e in _events(w)
             if e.get("details", {}).get("request") == rid and "change" in e["details"]]
    assert steps == [("pending", "OK"), ("approved", "OK"), ("executed", "OK")]
    assert _verified(w)
    _scan_for_numbers(w)


def test_when_the_requester_or_its_own_organisation_approves_then_it_is_refused(world: World) -> None:
    w = world
    rid = _subject_access(w, w.everyone[0]["nhs_number"])
    with w.channel(OPS) as ch:  # the requester itself
        assert _status(lambda: rights_pb2_grpc.RightsServiceStub(ch).ApproveRequest(
            rights_pb2.ApproveRequestRequest(request=rid), timeout=30)) == C.PERMISSION_DENIED
    with w.channel(OPS_AUDITOR) as ch:  # a second identity of the same organisation
        assert _status(lambda: rights_pb2_grpc.RightsServiceStub(ch).ApproveRequest(
            rights_pb2.ApproveRequestRequest(request=rid), timeout=30)) == C.PERMISSION_DENIED
    with w.channel(OPS) as ch:  # no result before approval
        assert _status(lambda: rights_pb2_grpc.RightsServiceStub(ch).GetSubjectAccessReport(
            rights_pb2.GetSubjectAccessReportRequest(request=rid), timeout=30)) == C.FAILED_PRECONDITION
    assert w.rights(AUDIT, "GetRequest", rights_pb2.GetRequestRequest(request=rid)).request.status == "pending"
    # A refusal ends it.
    refused = w.rights(AUDIT, "RefuseRequest", rights_pb2.RefuseRequestRequest(
        request=rid, reason="no letter on file"))
    assert refused.request.status == "refused"
    assert refused.request.refusal_reason == "no letter on file"
    with w.channel(AUDIT) as ch:
        assert _status(lambda: rights_pb2_grpc.RightsServiceStub(ch).ApproveRequest(
            rights_pb2.ApproveRequestRequest(request=rid), timeout=30)) == C.FAILED_PRECONDITION
    events = [e for e in _events(w) if e.get("details", {}).get("request") == rid]
    steps = [(e["method"].rsplit("/", 1)[1], e["status"], e["details"].get("request_status"))
             for e in events]
    assert steps == [
        ("RequestSubjectAccess", "OK", "pending"),
        ("ApproveRequest", "PERMISSION_DENIED", None),
        ("ApproveRequest", "PERMISSION_DENIED", None),
        ("GetSubjectAccessReport", "FAILED_PRECONDITION", None),
        ("GetRequest", "OK", None),
        ("RefuseRequest", "OK", "refused"),
        ("ApproveRequest", "FAILED_PRECONDITION", None),
    ]
    refusal = events[5]["details"]
    assert refusal["reason_sha256"] == hashlib.sha256(b"no letter on file").hexdigest()
    assert (refusal["requester"], refusal["requester_role"]) == (OPS, "admin")
    assert (events[5]["organisation"], events[5]["role"]) == (AUDIT, "auditor")
    assert _verified(w)


def test_when_approval_comes_after_expiry_then_it_is_refused_and_the_expiry_is_audited(
    world: World,
) -> None:
    w = world
    rid = _subject_access(w, w.everyone[0]["nhs_number"])
    w.clock.now = START + dt.timedelta(days=7, seconds=1)
    with w.channel(AUDIT) as ch:
        assert _status(lambda: rights_pb2_grpc.RightsServiceStub(ch).ApproveRequest(
            rights_pb2.ApproveRequestRequest(request=rid), timeout=30)) == C.FAILED_PRECONDITION
    assert w.rights(AUDIT, "GetRequest", rights_pb2.GetRequestRequest(request=rid)).request.status == "expired"
    expired = [e for e in _events(w) if e.get("details", {}).get("request_status") == "expired"
               and "change" in e["details"]]
    assert len(expired) == 1 and expired[0]["status"] == "OK"
    assert _verified(w)


def test_when_a_reason_names_a_person_or_the_number_is_invalid_then_nothing_is_stored(
    world: World,
) -> None:
    w = world
    number = w.everyone[0]["nhs_number"]
    with w.channel(OPS) as ch:
        stub = rights_pb2_grpc.RightsServiceStub(ch)
        assert _status(lambda: stub.RequestSubjectAccess(rights_pb2.RequestSubjectAccessRequest(
            nhs_number=number, reason=f"patient {number} asked"), timeout=30)) == C.INVALID_ARGUMENT
        assert _status(lambda: stub.RequestSubjectAccess(rights_pb2.RequestSubjectAccessRequest(
            nhs_number=number, reason=" "), timeout=30)) == C.INVALID_ARGUMENT
        assert _status(lambda: stub.RequestSubjectAccess(rights_pb2.RequestSubjectAccessRequest(
            nhs_number="1234567890", reason="a letter"), timeout=30)) == C.INVALID_ARGUMENT
    with sqlite3.connect(w.data / "catalog.sqlite3") as db:
        assert db.execute("SELECT count(*) FROM rights_requests").fetchone() == (0,)
    _scan_for_numbers(w)


def test_when_a_reidentification_is_approved_then_each_provider_gets_only_its_own_records(
    world: World,
) -> None:
    w = world
    table, _ = _extract(w)
    person = table.column("person").to_pylist()
    wanted = [w.everyone[3], w.everyone[0]]  # [3] in both datasets, [0] in the GP data only
    tokens = [project_token("study", linkage_token(p["nhs_number"])) for p in wanted]
    assert set(tokens) <= set(person)
    reply = w.rights(UNI, "RequestReidentification", rights_pb2.RequestReidentificationRequest(
        project="study", tokens=tokens, reason="participants at risk: duty of care review"))
    rid = reply.request.id
    assert reply.request.tokens == 2
    with w.channel(GP) as ch:  # nothing before approval
        assert _status(lambda: rights_pb2_grpc.RightsServiceStub(ch).FetchReidentification(
            rights_pb2.FetchReidentificationRequest(request=rid), timeout=30)) == C.FAILED_PRECONDITION
    w.rights(OPS, "ApproveRequest", rights_pb2.ApproveRequestRequest(request=rid))
    gp = w.rights(GP, "FetchReidentification", rights_pb2.FetchReidentificationRequest(request=rid))
    council = w.rights(COUNCIL, "FetchReidentification",
                       rights_pb2.FetchReidentificationRequest(request=rid))
    # The independent recomputation: rows (1-based) of each provider's own submission.
    gp_rows = {i + 1: linkage_token(p["nhs_number"]) for i, p in enumerate(w.gp_people) if p in wanted}
    council_rows = {i + 1: linkage_token(p["nhs_number"])
                    for i, p in enumerate(w.council_people) if p in wanted}
    assert {(r.dataset, r.version, r.row, r.linkage_token) for r in gp.records} == {
        ("gp_diagnoses", 1, row, tok) for row, tok in gp_rows.items()}
    assert {(r.dataset, r.version, r.row, r.linkage_token) for r in council.records} == {
        ("council_services", 1, row, tok) for row, tok in council_rows.items()}
    assert gp.reason == "participants at risk: duty of care review"
    # Once per provider; never to the researcher.
    with w.channel(GP) as ch:
        assert _status(lambda: rights_pb2_grpc.RightsServiceStub(ch).FetchReidentification(
            rights_pb2.FetchReidentificationRequest(request=rid), timeout=30)) == C.FAILED_PRECONDITION
    with w.channel(UNI) as ch:
        assert _status(lambda: rights_pb2_grpc.RightsServiceStub(ch).FetchReidentification(
            rights_pb2.FetchReidentificationRequest(request=rid), timeout=30)) == C.PERMISSION_DENIED
        got = rights_pb2_grpc.RightsServiceStub(ch).GetRequest(
            rights_pb2.GetRequestRequest(request=rid), timeout=30)
    assert "lk1_" not in got.SerializeToString().decode("utf-8", "replace")
    with w.channel(OTHER_UNI) as ch:  # another researcher sees neither the request nor its reason
        assert _status(lambda: rights_pb2_grpc.RightsServiceStub(ch).GetRequest(
            rights_pb2.GetRequestRequest(request=rid), timeout=30)) == C.PERMISSION_DENIED
    # The researcher saw no linkage token in anything it received.
    for blob in [reply.SerializeToString(), got.SerializeToString()]:
        assert b"lk1_" not in blob
    # No linkage token in the audit log.
    with sqlite3.connect(w.data / AUDIT_DB_NAME) as db:
        assert not any("lk1_" in b for (b,) in db.execute("SELECT body FROM events"))
    assert _verified(w)
    _scan_for_numbers(w)


def test_when_tokens_are_unknown_foreign_or_too_many_or_the_caller_is_not_the_researcher_then_nothing_is_revealed(
    world: World,
) -> None:
    w = world
    table, _ = _extract(w)
    real = table.column("person").to_pylist()[0]
    foreign = project_token("other", linkage_token(w.everyone[0]["nhs_number"]))
    unknown = "pk1_" + "a" * 32
    reason = "participants at risk"
    with w.channel(UNI) as ch:
        stub = rights_pb2_grpc.RightsServiceStub(ch)
        details = set()
        for tokens in ([real, unknown], [real, foreign], [unknown]):
            with pytest.raises(grpc.RpcError) as info:
                stub.RequestReidentification(rights_pb2.RequestReidentificationRequest(
                    project="study", tokens=tokens, reason=reason), timeout=30)
            assert info.value.code() == C.FAILED_PRECONDITION
            details.add(info.value.details())
        assert len(details) == 1  # one message whichever token was wrong
        assert _status(lambda: stub.RequestReidentification(rights_pb2.RequestReidentificationRequest(
            project="study", tokens=[f"pk1_{i:032d}" for i in range(6)], reason=reason),
            timeout=30)) == C.INVALID_ARGUMENT
        assert _status(lambda: stub.RequestReidentification(rights_pb2.RequestReidentificationRequest(
            project="nope", tokens=[real], reason=reason), timeout=30)) == C.PERMISSION_DENIED
    # A researcher of another organisation is told the same as for an unknown project.
    with w.channel(OTHER_UNI) as ch:
        with pytest.raises(grpc.RpcError) as other:
            rights_pb2_grpc.RightsServiceStub(ch).RequestReidentification(
                rights_pb2.RequestReidentificationRequest(project="study", tokens=[real],
                                                          reason=reason), timeout=30)
        assert other.value.code() == C.PERMISSION_DENIED
        assert "does not exist or is not yours" in (other.value.details() or "")
    with w.channel(OPS) as ch:  # and an admin may not ask at all
        assert _status(lambda: rights_pb2_grpc.RightsServiceStub(ch).RequestReidentification(
            rights_pb2.RequestReidentificationRequest(project="study", tokens=[real], reason=reason),
            timeout=30)) == C.PERMISSION_DENIED
    with sqlite3.connect(w.data / "catalog.sqlite3") as db:
        assert db.execute("SELECT count(*) FROM rights_requests").fetchone() == (0,)


def _cli(w: World, who: str, *argv: str) -> tuple[int, str, str]:
    import contextlib
    import io

    from pseudogate.cli import main

    folder = w.pki / "ops-auditor" if who == OPS_AUDITOR else w.pki
    name = OPS if who == OPS_AUDITOR else who
    creds = ["--server", f"localhost:{w.gateway.port}", "--ca", str(w.pki / "ca.pem"),
             "--cert", str(folder / f"{name}.pem"), "--key", str(folder / f"{name}.key")]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["request", argv[0], *creds, *argv[1:]])
    w.responses += [out.getvalue().encode(), err.getvalue().encode()]
    return code, out.getvalue(), err.getvalue()


def test_when_the_cli_is_used_end_to_end_then_ids_come_last_and_results_are_written_once(
    world: World, tmp_path: Path
) -> None:
    w = world
    _table, _ = _extract(w)
    person = w.everyone[4]
    code, out, _ = _cli(w, OPS, "subject-access", "--nhs-number", person["nhs_number"],
                        "--reason", "Article 15 letter of 2 March")
    assert code == 0
    rid = out.strip().splitlines()[-1]
    assert len(rid) == 32 and rid in out
    assert _cli(w, OPS, "approve", rid)[0] != 0  # its own requester
    code, out, _ = _cli(w, AUDIT, "approve", rid)
    assert code == 0 and "approved" in out
    code, out, _ = _cli(w, OPS, "result", rid, "--output", str(tmp_path / "report.txt"),
                        "--format", "text")
    assert code == 0
    text = (tmp_path / "report.txt").read_text(encoding="utf-8")
    assert "gp_diagnoses version 1: 1 record(s), provided by gp-denbigh" in text
    assert "project study" in text and "included" in text
    assert _cli(w, OPS, "result", rid, "--output", str(tmp_path / "again.json"))[0] != 0
    assert not (tmp_path / "again.json").exists()
    # Re-identification: researcher asks, admin of another organisation approves, GP fetches.
    tokens = tmp_path / "tokens.txt"
    tokens.write_text(project_token("study", linkage_token(person["nhs_number"])) + "\n",
                      encoding="utf-8")
    code, researcher_out, _ = _cli(w, UNI, "reidentify", "--project", "study", "--tokens", str(tokens),
                        "--reason", "participant at risk")
    assert code == 0
    rid = researcher_out.strip().splitlines()[-1]
    assert "lk1_" not in researcher_out
    assert _cli(w, OPS, "approve", rid)[0] == 0
    code, out, _ = _cli(w, GP, "fetch", rid, "--output", str(tmp_path / "gp.csv"))
    assert code == 0
    rows = (tmp_path / "gp.csv").read_text(encoding="utf-8").splitlines()
    row = w.gp_people.index(person) + 1
    assert rows == ["request,reason,dataset,version,row,linkage_token",
                    (f"{rid},participant at risk,gp_diagnoses,1,{row},"
                    f"{linkage_token(person['nhs_number'])}")]
    code, out, _ = _cli(w, AUDIT, "register")
    assert code == 0 and "reidentify" in out and "subject_access" in out
    _scan_for_numbers(w)
    assert _verified(w)


def test_when_an_extract_was_released_before_manifests_were_kept_then_its_audit_event_names_it(
    world: World,
) -> None:
    w = world
    _extract(w)
    _extract(w)
    with sqlite3.connect(w.data / "catalog.sqlite3") as db:  # as a catalog of before the register
        db.execute("DELETE FROM released_manifests WHERE id = 1")
    rid = _subject_access(w, w.everyone[4]["nhs_number"])
    w.rights(AUDIT, "ApproveRequest", rights_pb2.ApproveRequestRequest(request=rid))
    report = json.loads(w.rights(OPS, "GetSubjectAccessReport",
                                 rights_pb2.GetSubjectAccessReportRequest(request=rid)).report_json)
    (project,) = report["projects"]
    # Two releases: one manifest kept, the other known from its event only; none twice.
    assert [e["source"] for e in project["extracts"]] == ["manifest", "audit_log"]
    assert {e["outcome"] for e in project["extracts"]} == {"included"}
    with sqlite3.connect(w.data / "catalog.sqlite3") as db:
        db.execute("DELETE FROM released_manifests")
    rid = _subject_access(w, w.everyone[4]["nhs_number"])
    w.rights(AUDIT, "ApproveRequest", rights_pb2.ApproveRequestRequest(request=rid))
    report = json.loads(w.rights(OPS, "GetSubjectAccessReport",
                                 rights_pb2.GetSubjectAccessReportRequest(request=rid)).report_json)
    first, second = report["projects"][0]["extracts"]
    assert first == second
    extract = first
    assert extract["source"] == "audit_log"
    assert extract["datasets"] == [{"dataset": "gp_diagnoses", "version": 1},
                                   {"dataset": "council_services", "version": 1}]
    assert (extract["outcome"], extract["optout_snapshot"]) == ("included", 1)


def test_when_the_project_has_expired_or_released_no_extract_then_reidentification_is_a_failed_precondition(
    world: World,
) -> None:
    w = world
    table, _ = _extract(w)
    real = table.column("person").to_pylist()[0]
    with w.channel(OPS) as ch:
        stub = admin_pb2_grpc.AdminServiceStub(ch)
        stub.CreateProject(admin_pb2.CreateProjectRequest(
                **STATEMENTS,
            project="short", researcher=UNI, datasets=["gp_diagnoses", "council_services"],
            policy_yaml=PROJECT_POLICY.replace("name: study", "name: short"),
            expires="2026-03-03"), timeout=30)
        stub.CreateProject(admin_pb2.CreateProjectRequest(
                **STATEMENTS,
            project="fuzzy", researcher=UNI, datasets=["gp_diagnoses", "council_services"],
            policy_yaml=PROJECT_POLICY.replace("name: study", "name: fuzzy"),
            expires="2099-01-01", linkage="probabilistic"), timeout=30)
    w.clock.now = START + dt.timedelta(days=2)  # 2026-03-04: "short" ended on the 3rd
    with w.channel(UNI) as ch:
        stub_r = rights_pb2_grpc.RightsServiceStub(ch)
        for project in ("short", "fuzzy"):
            with pytest.raises(grpc.RpcError) as info:
                stub_r.RequestReidentification(rights_pb2.RequestReidentificationRequest(
                    project=project, tokens=[real], reason="participant at risk"), timeout=30)
            assert info.value.code() == C.FAILED_PRECONDITION, project
        # "fuzzy" (probabilistic) is not refused for its method (test_rights_probabilistic.py):
        # it released no extract, so no token is one of its own
        assert "expired" not in (info.value.details() or "")


def test_when_a_reidentification_expires_or_a_provider_had_no_part_then_nothing_is_returned(
    world: World,
) -> None:
    w = world
    table, _ = _extract(w)
    real = table.column("person").to_pylist()[0]
    rid = w.rights(UNI, "RequestReidentification", rights_pb2.RequestReidentificationRequest(
        project="study", tokens=[real], reason="participant at risk")).request.id
    w.clock.now = START + dt.timedelta(days=8)
    with w.channel(GP) as ch:
        assert _status(lambda: rights_pb2_grpc.RightsServiceStub(ch).FetchReidentification(
            rights_pb2.FetchReidentificationRequest(request=rid), timeout=30)) == C.FAILED_PRECONDITION
    with w.channel(OPS) as ch:
        assert _status(lambda: rights_pb2_grpc.RightsServiceStub(ch).RefuseRequest(
            rights_pb2.RefuseRequestRequest(request=rid, reason="too late"), timeout=30)
        ) == C.FAILED_PRECONDITION
    assert w.rights(UNI, "GetRequest", rights_pb2.GetRequestRequest(request=rid)).request.status == "expired"
    # A fresh request, approved: a provider with no version in the project's extracts is refused.
    w.clock.now = START + dt.timedelta(days=9)
    rid = w.rights(UNI, "RequestReidentification", rights_pb2.RequestReidentificationRequest(
        project="study", tokens=[real], reason="participant at risk")).request.id
    w.rights(AUDIT, "ApproveRequest", rights_pb2.ApproveRequestRequest(request=rid))
    with w.channel(OPS) as ch:  # approved already: another approver changes nothing
        assert _status(lambda: rights_pb2_grpc.RightsServiceStub(ch).ApproveRequest(
            rights_pb2.ApproveRequestRequest(request=rid), timeout=30)) == C.FAILED_PRECONDITION
    pki = w.pki / "extra"
    pki.mkdir()
    for name in ("ca.pem", "ca.key", "server.pem", "server.key"):
        shutil.copy(w.pki / name, pki / name)
    write_dev_certs(pki, [("pharmacy-rhyl", Role.PROVIDER)])
    creds = grpc.ssl_channel_credentials(
        root_certificates=(w.pki / "ca.pem").read_bytes(),
        private_key=(pki / "pharmacy-rhyl.key").read_bytes(),
        certificate_chain=(pki / "pharmacy-rhyl.pem").read_bytes(),
    )
    with grpc.secure_channel(f"localhost:{w.gateway.port}", creds) as ch:
        assert _status(lambda: rights_pb2_grpc.RightsServiceStub(ch).FetchReidentification(
            rights_pb2.FetchReidentificationRequest(request=rid), timeout=30)) == C.PERMISSION_DENIED
    assert len(w.rights(GP, "FetchReidentification",
                        rights_pb2.FetchReidentificationRequest(request=rid)).records) >= 1
    assert _verified(w)


def test_when_requests_are_listed_then_approvers_see_all_and_others_only_their_own(
    world: World,
) -> None:
    w = world
    table, _ = _extract(w)
    sar = _subject_access(w, w.everyone[0]["nhs_number"])
    reid = w.rights(UNI, "RequestReidentification", rights_pb2.RequestReidentificationRequest(
        project="study", tokens=[table.column("person").to_pylist()[0]],
        reason="participant at risk")).request.id

    def listed(who: str, status: str = "") -> list[str]:
        reply = w.rights(who, "ListRequests", rights_pb2.ListRequestsRequest(status=status))
        return sorted(r.id for r in reply.requests)

    assert listed(AUDIT, "pending") == sorted([sar, reid])
    assert listed(OPS) == sorted([sar, reid])
    assert listed(UNI) == [reid]
    assert listed(OTHER_UNI) == []
    w.rights(AUDIT, "ApproveRequest", rights_pb2.ApproveRequestRequest(request=sar))
    assert listed(AUDIT, "pending") == [reid]
    assert listed(AUDIT, "approved") == [sar]
    code, out, _ = _cli(w, AUDIT, "list", "--status", "pending")
    assert code == 0 and reid in out and sar not in out
    for blob in w.responses:
        assert b"lk1_" not in blob


def test_when_the_project_ends_after_the_request_then_approval_and_fetch_are_failed_preconditions(
    world: World,
) -> None:
    w = world
    with w.channel(OPS) as ch:
        admin_pb2_grpc.AdminServiceStub(ch).CreateProject(admin_pb2.CreateProjectRequest(
            **STATEMENTS,
            project="short", researcher=UNI, datasets=["gp_diagnoses", "council_services"],
            policy_yaml=PROJECT_POLICY.replace("name: study", "name: short"),
            expires="2026-03-03"), timeout=30)
    with w.channel(UNI) as ch:
        replies = list(extract_pb2_grpc.ExtractServiceStub(ch).CreateExtract(
            extract_pb2.CreateExtractRequest(project="short"), timeout=60))
    table = pa.concat_tables(pa.ipc.open_stream(r.arrow_ipc).read_all()
                             for r in replies if not r.manifest_json)
    real = table.column("person").to_pylist()[0]

    def request() -> str:
        return str(w.rights(UNI, "RequestReidentification",
                            rights_pb2.RequestReidentificationRequest(
                                project="short", tokens=[real], reason="participant at risk",
                            )).request.id)

    waiting, approved = request(), request()
    w.rights(AUDIT, "ApproveRequest", rights_pb2.ApproveRequestRequest(request=approved))
    w.clock.now = START + dt.timedelta(days=2)  # 2026-03-04: "short" ended on the 3rd
    with w.channel(AUDIT) as ch:
        assert _status(lambda: rights_pb2_grpc.RightsServiceStub(ch).ApproveRequest(
            rights_pb2.ApproveRequestRequest(request=waiting), timeout=30)) == C.FAILED_PRECONDITION
    with w.channel(GP) as ch:
        with pytest.raises(grpc.RpcError) as info:
            rights_pb2_grpc.RightsServiceStub(ch).FetchReidentification(
                rights_pb2.FetchReidentificationRequest(request=approved), timeout=30)
        assert info.value.code() == C.FAILED_PRECONDITION
        assert "expired" in (info.value.details() or "")
    assert w.rights(AUDIT, "GetRequest",
                    rights_pb2.GetRequestRequest(request=waiting)).request.status == "pending"
    assert _verified(w)
