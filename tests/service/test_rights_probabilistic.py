"""Re-identification in a probabilistic project, through real mTLS servers.

A fire service's home safety visits carry identity fields but no NHS number; a GP practice's
records carry both. The probabilistic project links a visit to its GP record; ``person`` is
the project token of the cluster's representative linkage token. After approval each
provider fetches only its own rows of the clusters named (the GP's with their NHS linkage
token, the fire service's with none: it finds them by row), and an independent recomputation
from the synthetic people agrees.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import grpc
import pyarrow as pa
import pytest

from pseudogate.audit import AUDIT_DB_NAME
from pseudogate.core.authz import Role
from pseudogate.core.keyring import Keyring
from pseudogate.core.rights import RightsSettings
from pseudogate.service.app import GatewaySettings, start_gateway
from pseudogate.service.server import TlsFiles
from pseudogate.tools.certs import write_dev_certs
from pseudogate.tools.synthetic import Person, make_people
from pseudogate.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    extract_pb2,
    extract_pb2_grpc,
    rights_pb2,
    rights_pb2_grpc,
)
from tests.statements import STATEMENTS
from tests.store.helpers import Clock, ipc, keyring_document, linkage_token, project_token

from .test_probabilistic_end_to_end import FIRE_POLICY, GP_POLICY, _uk_date
from .test_rights import AUDIT, OPS, START, UNI, World, _status, _submit, _verified

C = grpc.StatusCode
GP, FIRE = "gp-denbigh", "nwfrs"
PROJECT = "fire-risk"
POLICY = """\
version: 1
name: fire-risk
columns:
  person:        {action: keep}
  fire.outcome:  {action: keep}
  gp.diagnosis:  {action: keep}
privacy: {k: 2, suppression_limit: 0.5}
"""
# GP: people 0-39. Fire service: 10-39 (linked to the GP's records) and 40-49 (no GP record).
GP_PEOPLE, FIRE_PEOPLE = range(40), [*range(10, 40), *range(40, 50)]


def _address(i: int) -> str:
    return f"{10 + i} Heol y Castell"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[World, list[Person]]]:
    pki = tmp_path / "pki"
    write_dev_certs(pki, [(GP, Role.PROVIDER), (FIRE, Role.PROVIDER), (UNI, Role.RESEARCHER),
                          (AUDIT, Role.AUDITOR), (OPS, Role.ADMIN)])
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "gp-identify.yaml").write_text(GP_POLICY, encoding="utf-8")
    (policies / "fire-visits.yaml").write_text(FIRE_POLICY, encoding="utf-8")
    keyring = tmp_path / "keyring.json"
    Keyring.from_document(keyring_document()).save(keyring)
    clock = Clock(START)
    gateway = start_gateway(GatewaySettings(
        port=0, data_dir=tmp_path / "data", policies=policies, keyring=keyring, clock=clock,
        tls=TlsFiles(pki / "ca.pem", pki / "server.pem", pki / "server.key"),
        rights=RightsSettings(expiry_days=7, max_tokens=5),
    ))
    w = World(gateway, pki, tmp_path / "data", clock, [], [], [], [])
    folk = make_people(50, seed=31)
    try:
        gp = [folk[i] for i in GP_PEOPLE]
        _submit(w, GP, "gp", "gp-identify", ipc({
            "nhs_number": [p.nhs_number for p in gp],
            "given_name": [p.given_name for p in gp],
            "family_name": [p.family_name for p in gp],
            "date_of_birth": [p.date_of_birth for p in gp],
            "sex": [p.sex for p in gp],
            "postcode": [p.postcode for p in gp],
            "address": [_address(i) for i in GP_PEOPLE],
            "diagnosis": ["asthma" if i % 2 else "copd" for i in GP_PEOPLE],
        }))
        fire = [folk[i] for i in FIRE_PEOPLE]
        _submit(w, FIRE, "fire", "fire-visits", ipc({
            "first_name": [p.given_name.lower() for p in fire],
            "last_name": [p.family_name.upper() for p in fire],
            "birth_date": [_uk_date(p.date_of_birth) for p in fire],
            "address_line": [_address(i).upper() for i in FIRE_PEOPLE],
            "postcode": [p.postcode.lower() for p in fire],
            "outcome": ["alarm fitted" if i % 2 else "advice given" for i in FIRE_PEOPLE],
        }))
        with w.channel(OPS) as ch:
            admin_pb2_grpc.AdminServiceStub(ch).CreateProject(admin_pb2.CreateProjectRequest(
                **STATEMENTS, project=PROJECT, researcher=UNI, datasets=["fire", "gp"],
                policy_yaml=POLICY, expires="2026-03-20", linkage="probabilistic",
            ), timeout=30)
        yield w, folk
    finally:
        gateway.stop(grace=None)


def _extract(w: World) -> pa.Table:
    tables = []
    with w.channel(UNI) as ch:
        for reply in extract_pb2_grpc.ExtractServiceStub(ch).CreateExtract(
            extract_pb2.CreateExtractRequest(project=PROJECT), timeout=120
        ):
            if not reply.manifest_json:
                tables.append(pa.ipc.open_stream(reply.arrow_ipc).read_all())
    return pa.concat_tables(tables)


def _fetch(w: World, who: str, rid: str) -> set[tuple[str, int, int, str]]:
    reply = w.rights(who, "FetchReidentification",
                     rights_pb2.FetchReidentificationRequest(request=rid))
    return {(r.dataset, r.version, r.row, r.linkage_token) for r in reply.records}


def test_when_a_probabilistic_reidentification_is_approved_then_each_provider_gets_its_own_rows_of_the_cluster(
    world: tuple[World, list[Person]],
) -> None:
    w, folk = world
    table = _extract(w)
    persons = table.column("person").to_pylist()
    linked = folk[20]  # a visit linked to a GP record; folk[45]: a visit with no GP record
    # In a cluster holding an NHS number, person = project_token(its NHS linkage token).
    linked_token = project_token(PROJECT, linkage_token(linked.nhs_number))
    assert linked_token in persons
    fire_only_token = persons[FIRE_PEOPLE.index(45)]  # the extract's rows follow the visits
    assert fire_only_token not in {project_token(PROJECT, linkage_token(folk[i].nhs_number))
                                   for i in range(50)}
    rid = w.rights(UNI, "RequestReidentification", rights_pb2.RequestReidentificationRequest(
        project=PROJECT, tokens=[linked_token, fire_only_token],
        reason="home safety follow-up: duty of care")).request.id
    w.rights(AUDIT, "ApproveRequest", rights_pb2.ApproveRequestRequest(request=rid))
    gp, fire = _fetch(w, GP, rid), _fetch(w, FIRE, rid)
    # The independent recomputation: each provider's own 1-based rows of those people.
    assert gp == {("gp", 1, GP_PEOPLE.index(20) + 1, linkage_token(linked.nhs_number))}
    assert fire == {("fire", 1, FIRE_PEOPLE.index(20) + 1, ""),
                    ("fire", 1, FIRE_PEOPLE.index(45) + 1, "")}
    with w.channel(GP) as ch:  # once
        assert _status(lambda: rights_pb2_grpc.RightsServiceStub(ch).FetchReidentification(
            rights_pb2.FetchReidentificationRequest(request=rid), timeout=30)
        ) == C.FAILED_PRECONDITION
    with w.channel(UNI) as ch:  # never to the researcher
        assert _status(lambda: rights_pb2_grpc.RightsServiceStub(ch).FetchReidentification(
            rights_pb2.FetchReidentificationRequest(request=rid), timeout=30)
        ) == C.PERMISSION_DENIED
    with sqlite3.connect(w.data / AUDIT_DB_NAME) as db:
        bodies = [json.loads(b) for (b,) in db.execute("SELECT body FROM events")]
    assert not any("lk1_" in json.dumps(b) for b in bodies)
    delivered = [b for b in bodies if b.get("details", {}).get("request_status") == "executed"]
    assert sorted(b["counts"]["records"] for b in delivered) == [1, 2]
    assert _verified(w)


def test_when_a_token_is_unknown_or_the_project_ends_then_a_probabilistic_request_is_refused(
    world: tuple[World, list[Person]],
) -> None:
    w, folk = world
    persons = _extract(w).column("person").to_pylist()
    real = persons[0]
    foreign = project_token("another", linkage_token(folk[20].nhs_number))
    with w.channel(UNI) as ch:
        stub = rights_pb2_grpc.RightsServiceStub(ch)
        messages = set()
        for tokens in ([foreign], [real, foreign], [real + "x"]):
            with pytest.raises(grpc.RpcError) as info:
                stub.RequestReidentification(rights_pb2.RequestReidentificationRequest(
                    project=PROJECT, tokens=tokens, reason="participant at risk"), timeout=60)
            assert info.value.code() == C.FAILED_PRECONDITION
            messages.add(info.value.details())
        assert len(messages) == 1  # one message whatever the tokens
    rid = w.rights(UNI, "RequestReidentification", rights_pb2.RequestReidentificationRequest(
        project=PROJECT, tokens=[real], reason="participant at risk")).request.id
    w.rights(AUDIT, "ApproveRequest", rights_pb2.ApproveRequestRequest(request=rid))
    w.clock.now = dt.datetime(2026, 3, 21, 9, 0, tzinfo=dt.UTC)  # the project ended on the 20th
    with w.channel(GP) as ch:
        assert _status(lambda: rights_pb2_grpc.RightsServiceStub(ch).FetchReidentification(
            rights_pb2.FetchReidentificationRequest(request=rid), timeout=30)
        ) == C.FAILED_PRECONDITION
