"""mTLS identities and the role table through a real TLS server on a loopback port."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from pseudogate.audit import AUDIT_DB_NAME
from pseudogate.core.authz import ROLE_TABLE, Role
from pseudogate.service.app import GatewaySettings, start_gateway
from pseudogate.service.server import GatewayServer, TlsFiles
from pseudogate.tools.certs import (
    cert_pem,
    issue_client_cert,
    key_pem,
    load_certificate,
    make_ca,
    write_dev_certs,
)
from pseudogate.tools.demo import GP_POLICY
from tests.service.rpcs import all_rpcs, status_of

ORGS = {
    Role.PROVIDER: "gp-denbigh",
    Role.RESEARCHER: "uni-bangor",
    Role.AUDITOR: "audit-office",
    Role.ADMIN: "ops",
}
C = grpc.StatusCode

# What an empty request gets from a caller whose role IS allowed (the call got past authorisation).
ALLOWED_STATUS = {
    "/pseudogate.v1.TokenisationService/Tokenise": C.INVALID_ARGUMENT,  # unknown domain ''
    "/pseudogate.v1.TokenisationService/TokeniseStream": C.INVALID_ARGUMENT,  # domain ''
    "/pseudogate.v1.DatasetService/SubmitDataset": C.INVALID_ARGUMENT,  # no header
    "/pseudogate.v1.ExtractService/CreateExtract": C.PERMISSION_DENIED,  # unknown project: hidden
    "/pseudogate.v1.AdminService/CreateProject": C.INVALID_ARGUMENT,
    "/pseudogate.v1.AdminService/ImportOptOuts": C.INVALID_ARGUMENT,  # empty, not allow_empty
    "/pseudogate.v1.AdminService/LinkageReport": C.OK,
    "/pseudogate.v1.AdminService/ListKeys": C.OK,
    "/pseudogate.v1.AuditService/ListEvents": C.OK,
    "/pseudogate.v1.AuditService/GetCheckpoint": C.OK,
    "/pseudogate.v1.AuditService/GetPublicKey": C.OK,
    "/pseudogate.v1.AuditService/GetPolicy": C.NOT_FOUND,
    "/pseudogate.v1.AuditService/GetRequestRegister": C.OK,
    "/pseudogate.v1.RightsService/RequestSubjectAccess": C.INVALID_ARGUMENT,  # no NHS number
    "/pseudogate.v1.RightsService/RequestReidentification": C.PERMISSION_DENIED,  # hidden
    "/pseudogate.v1.RightsService/ApproveRequest": C.INVALID_ARGUMENT,  # no request id
    "/pseudogate.v1.RightsService/RefuseRequest": C.INVALID_ARGUMENT,
    "/pseudogate.v1.RightsService/GetRequest": C.INVALID_ARGUMENT,
    "/pseudogate.v1.RightsService/ListRequests": C.OK,
    "/pseudogate.v1.RightsService/GetSubjectAccessReport": C.INVALID_ARGUMENT,
    "/pseudogate.v1.RightsService/FetchReidentification": C.INVALID_ARGUMENT,
}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("certs")
    write_dev_certs(out, [(org, role) for role, org in ORGS.items()])
    return out


@pytest.fixture(scope="module")
def tls_gateway(pki: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    base = tmp_path_factory.mktemp("gw")
    (base / "policies").mkdir()
    (base / "policies" / "gp-ingest.yaml").write_text(GP_POLICY, encoding="utf-8")
    gateway = start_gateway(
        GatewaySettings(
            port=0,
            data_dir=base / "data",
            policies=base / "policies",
            tls=TlsFiles(pki / "ca.pem", pki / "server.pem", pki / "server.key"),
        )
    )
    gateway.data_dir = base / "data"  # type: ignore[attr-defined]
    try:
        yield gateway
    finally:
        gateway.stop(grace=None)


def _channel(gateway: GatewayServer, pki: Path, cert: bytes | None, key: bytes | None) -> grpc.Channel:
    creds = grpc.ssl_channel_credentials(
        root_certificates=(pki / "ca.pem").read_bytes(), private_key=key, certificate_chain=cert
    )
    return grpc.secure_channel(f"localhost:{gateway.port}", creds)


def _org_channel(gateway: GatewayServer, pki: Path, org: str) -> grpc.Channel:
    return _channel(gateway, pki, (pki / f"{org}.pem").read_bytes(), (pki / f"{org}.key").read_bytes())


def _events(gateway: GatewayServer) -> list[dict]:
    path = gateway.data_dir / AUDIT_DB_NAME  # type: ignore[attr-defined]
    with sqlite3.connect(path) as db:
        return [json.loads(b) for (b,) in db.execute("SELECT body FROM events ORDER BY seq")]


def _health(channel: grpc.Channel) -> int:
    return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10).status


def test_when_every_rpc_is_called_by_every_role_then_the_role_table_decides(
    tls_gateway: GatewayServer, pki: Path
) -> None:
    rpcs = list(all_rpcs())
    assert {r.path for r in rpcs} == set(ROLE_TABLE), "role table must list every RPC"
    before = len(_events(tls_gateway))
    refusals = 0
    for role, org in ORGS.items():
        with _org_channel(tls_gateway, pki, org) as ch:
            for rpc in rpcs:
                code, details = status_of(rpc, ch, [rpc.request_class()])
                if role in ROLE_TABLE[rpc.path]:
                    assert code == ALLOWED_STATUS[rpc.path], (role, rpc.path, code, details)
                    assert "may not call" not in details
                else:
                    assert code == C.PERMISSION_DENIED, (role, rpc.path, code)
                    assert "may not call" in details
                    refusals += 1
    events = _events(tls_gateway)[before:]
    assert len(events) == len(ORGS) * len(rpcs), "every call, allowed or refused, is audited"
    denied = [e for e in events if e["status"] == "PERMISSION_DENIED"]
    hidden_projects = sum(
        1 for e in denied
        if e["method"].endswith(("/CreateExtract", "/RequestReidentification"))
        and e["role"] == "researcher"
    )
    assert len(denied) == refusals + hidden_projects
    for e in denied:
        assert e["organisation"] in ORGS.values() and e["role"] in {r.value for r in Role}


def test_when_the_caller_is_a_provider_then_its_organisation_comes_from_the_certificate(
    tls_gateway: GatewayServer, pki: Path
) -> None:
    rpc = next(r for r in all_rpcs() if r.path.endswith("/GetPublicKey"))
    with _org_channel(tls_gateway, pki, "gp-denbigh") as ch:
        assert status_of(rpc, ch, [rpc.request_class()])[0] == C.OK
    last = _events(tls_gateway)[-1]
    assert (last["organisation"], last["role"], last["status"]) == ("gp-denbigh", "provider", "OK")


def _handshake_refused(gateway: GatewayServer, pki: Path, cert: bytes | None, key: bytes | None) -> None:
    before = len(_events(gateway))
    with _channel(gateway, pki, cert, key) as ch:
        with pytest.raises(grpc.RpcError) as err:
            _health(ch)
        rpc = next(r for r in all_rpcs() if r.path.endswith("/GetPublicKey"))
        assert status_of(rpc, ch, [rpc.request_class()])[0] == C.UNAVAILABLE
    assert err.value.code() == C.UNAVAILABLE
    assert len(_events(gateway)) == before, "a refused handshake never reaches a servicer"


def test_when_no_client_certificate_is_presented_then_the_handshake_is_refused(
    tls_gateway: GatewayServer, pki: Path
) -> None:
    _handshake_refused(tls_gateway, pki, None, None)


def test_when_the_certificate_comes_from_another_ca_then_the_handshake_is_refused(
    tls_gateway: GatewayServer, pki: Path
) -> None:
    now = dt.datetime.now(dt.UTC)
    other = make_ca(not_before=now - dt.timedelta(days=1), not_after=now + dt.timedelta(days=30))
    cert, key = issue_client_cert(
        other, "gp-denbigh", Role.PROVIDER,
        not_before=now - dt.timedelta(days=1), not_after=now + dt.timedelta(days=30),
    )
    _handshake_refused(tls_gateway, pki, cert_pem(cert), key_pem(key))


def _our_ca(pki: Path):  # type: ignore[no-untyped-def]
    from cryptography.hazmat.primitives import serialization

    from pseudogate.tools.certs import CertificateAuthority

    key = serialization.load_pem_private_key((pki / "ca.key").read_bytes(), password=None)
    return CertificateAuthority(load_certificate((pki / "ca.pem").read_bytes()), key)  # type: ignore[arg-type]


def test_when_the_certificate_has_expired_then_the_handshake_is_refused(
    tls_gateway: GatewayServer, pki: Path
) -> None:
    now = dt.datetime.now(dt.UTC)
    cert, key = issue_client_cert(
        _our_ca(pki), "gp-denbigh", Role.PROVIDER,
        not_before=now - dt.timedelta(days=40), not_after=now - dt.timedelta(days=10),
    )
    _handshake_refused(tls_gateway, pki, cert_pem(cert), key_pem(key))


@pytest.mark.parametrize(
    "uris",
    [
        [],
        ["spiffe://pseudogate/org/a/role/admin", "spiffe://pseudogate/org/b/role/admin"],
        ["spiffe://pseudogate/org/ops/role/superuser"],
        ["spiffe://elsewhere/org/ops/role/admin"],
    ],
    ids=["none", "two", "unknown-role", "foreign"],
)
def test_when_a_ca_certificate_lacks_one_valid_identity_then_audited_rpcs_are_denied(
    tls_gateway: GatewayServer, pki: Path, uris: list[str]
) -> None:
    now = dt.datetime.now(dt.UTC)
    cert, key = issue_client_cert(
        _our_ca(pki), "ops", Role.ADMIN, uris=uris,
        not_before=now - dt.timedelta(days=1), not_after=now + dt.timedelta(days=1),
    )
    with _channel(tls_gateway, pki, cert_pem(cert), key_pem(key)) as ch:
        assert _health(ch) == health_pb2.HealthCheckResponse.SERVING  # open, unaudited
        for rpc in all_rpcs():
            code, _ = status_of(rpc, ch, [rpc.request_class()])
            assert code == C.PERMISSION_DENIED, rpc.path
    last = _events(tls_gateway)[-1]
    assert last["status"] == "PERMISSION_DENIED" and last["organisation"] is None
