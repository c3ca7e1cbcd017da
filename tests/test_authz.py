"""Identities from SPIFFE URIs and the role table."""

from __future__ import annotations

import importlib

import pytest

from pseudogate.core.authz import (
    INSECURE,
    ROLE_TABLE,
    Identity,
    Role,
    allowed_roles,
    authorise,
    identity_from_uris,
    is_unaudited,
    spiffe_uri,
)
from pseudogate.core.errors import PermissionDenied

V1 = "/pseudogate.v1."


def _proto_methods() -> set[str]:
    """Every RPC declared in proto/pseudogate/v1, read from the generated descriptors."""
    methods = set()
    for name in ("admin", "audit", "dataset", "extract", "tokenisation", "common", "rights"):
        module = importlib.import_module(f"pseudogate.v1.{name}_pb2")
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                methods.add(f"/{service.full_name}/{method.name}")
    return methods


def test_when_the_protos_are_read_then_the_role_table_lists_exactly_their_rpcs() -> None:
    assert set(ROLE_TABLE) == _proto_methods()
    assert len(ROLE_TABLE) == 21


EXPECTED = {
    "TokenisationService/Tokenise": {"provider"},
    "TokenisationService/TokeniseStream": {"provider"},
    "DatasetService/SubmitDataset": {"provider"},
    "ExtractService/CreateExtract": {"researcher"},
    "AdminService/CreateProject": {"admin"},
    "AdminService/ImportOptOuts": {"admin"},
    "AdminService/LinkageReport": {"admin"},
    "AdminService/ListKeys": {"admin"},
    "AuditService/ListEvents": {"auditor"},
    "AuditService/GetCheckpoint": {"auditor"},
    "AuditService/GetPolicy": {"auditor"},
    "AuditService/GetPublicKey": {"provider", "researcher", "auditor", "admin"},
    "AuditService/GetRequestRegister": {"auditor"},
    "RightsService/RequestSubjectAccess": {"admin"},
    "RightsService/RequestReidentification": {"researcher"},
    "RightsService/ApproveRequest": {"auditor", "admin"},
    "RightsService/RefuseRequest": {"auditor", "admin"},
    "RightsService/GetRequest": {"researcher", "auditor", "admin"},
    "RightsService/ListRequests": {"researcher", "auditor", "admin"},
    "RightsService/GetSubjectAccessReport": {"admin"},
    "RightsService/FetchReidentification": {"provider"},
}


@pytest.mark.parametrize("method", sorted(EXPECTED))
@pytest.mark.parametrize("role", list(Role))
def test_when_each_role_calls_each_rpc_then_the_table_decides(method: str, role: Role) -> None:
    identity = Identity.of("some-org", role)
    full = V1 + method
    if role.value in EXPECTED[method]:
        assert authorise(identity, full) is role
    else:
        with pytest.raises(PermissionDenied, match=role.value):
            authorise(identity, full)


def test_when_an_auditor_asks_for_data_then_it_is_refused() -> None:
    auditor = Identity.of("audit-office", Role.AUDITOR)
    # An auditor decides on people's rights requests and reads their descriptions (no data).
    decisions = {f"/pseudogate.v1.RightsService/{m}"
                 for m in ("ApproveRequest", "RefuseRequest", "GetRequest", "ListRequests")}
    for method in ROLE_TABLE:
        if "AuditService" not in method and method not in decisions:
            with pytest.raises(PermissionDenied):
                authorise(auditor, method)


def test_when_a_method_is_not_in_the_table_then_it_is_denied_to_everyone() -> None:
    with pytest.raises(PermissionDenied, match="role table"):
        authorise(INSECURE, "/pseudogate.v1.AdminService/DropEverything")
    assert allowed_roles("/x.Y/Z") == frozenset()


@pytest.mark.parametrize(
    "method",
    [
        "/grpc.health.v1.Health/Check",
        "/grpc.health.v1.Health/Watch",
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    ],
)
def test_when_health_or_reflection_is_called_then_it_is_open_and_unaudited(method: str) -> None:
    assert is_unaudited(method)
    assert authorise(Identity.of("any", Role.RESEARCHER), method) is None


def test_when_rpcs_are_checked_then_none_is_unaudited() -> None:
    assert not any(is_unaudited(m) for m in ROLE_TABLE)


def test_when_insecure_then_every_rpc_is_granted_under_a_named_role() -> None:
    assert INSECURE.organisation == "insecure"
    assert INSECURE.roles == frozenset(Role)
    assert INSECURE.role_name == "insecure"
    assert authorise(INSECURE, V1 + "ExtractService/CreateExtract") is Role.RESEARCHER
    assert authorise(INSECURE, V1 + "AuditService/GetPublicKey") is Role.PROVIDER


def test_when_one_valid_uri_is_given_then_the_identity_is_parsed() -> None:
    identity = identity_from_uris(["spiffe://pseudogate/org/gp-denbigh/role/provider"])
    assert identity == Identity.of("gp-denbigh", Role.PROVIDER)
    assert identity.role_name == "provider"


def test_when_other_uri_schemes_accompany_the_identity_then_they_are_ignored() -> None:
    identity = identity_from_uris(
        ["https://example.org/x", "spiffe://pseudogate/org/ops/role/admin"]
    )
    assert identity.role is Role.ADMIN


@pytest.mark.parametrize(
    "uris",
    [
        [],
        ["https://example.org/"],
        [
            "spiffe://pseudogate/org/gp-denbigh/role/provider",
            "spiffe://pseudogate/org/ops/role/admin",
        ],
        [
            "spiffe://pseudogate/org/gp-denbigh/role/provider",
            "spiffe://pseudogate/org/gp-denbigh/role/provider",
        ],
        ["spiffe://pseudogate/org/gp-denbigh/role/superuser"],
        ["spiffe://pseudogate/org/GP/role/provider"],
        ["spiffe://pseudogate/org/gp_denbigh/role/provider"],
        ["spiffe://pseudogate/org//role/provider"],
        ["spiffe://other/org/gp-denbigh/role/provider"],
        ["spiffe://pseudogate/org/gp-denbigh/role/provider/extra"],
        ["spiffe://pseudogate/org/gp-denbigh/role/Provider"],
        ["SPIFFE://pseudogate/org/gp-denbigh/role/provider"],
    ],
)
def test_when_not_exactly_one_valid_identity_uri_then_permission_is_denied(
    uris: list[str],
) -> None:
    with pytest.raises(PermissionDenied):
        identity_from_uris(uris)


def test_when_building_an_identity_uri_then_bad_names_are_refused() -> None:
    assert spiffe_uri("uni-bangor", "researcher") == (
        "spiffe://pseudogate/org/uni-bangor/role/researcher"
    )
    with pytest.raises(ValueError):
        spiffe_uri("Uni Bangor", Role.RESEARCHER)
    with pytest.raises(ValueError):
        spiffe_uri("uni", "root")
