"""Property-based fuzzing of every RPC: malformed input gets client-error codes only, and the
server keeps answering health checks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pseudogate.service.app import GatewaySettings, start_gateway
from pseudogate.service.server import GatewayServer
from pseudogate.tools.demo import GP_POLICY
from tests.service.rpcs import Rpc, all_rpcs

C = grpc.StatusCode
CLIENT_ERRORS = {
    C.OK,
    C.INVALID_ARGUMENT,
    C.NOT_FOUND,
    C.ALREADY_EXISTS,
    C.PERMISSION_DENIED,
    C.FAILED_PRECONDITION,
    C.RESOURCE_EXHAUSTED,
    C.OUT_OF_RANGE,
}
F = descriptor.FieldDescriptor
_TEXT = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["person", "nhs_number", "gp_diagnoses", "gp-ingest", "2099-12-31", "x" * 70]),
)
_SCALARS = {
    F.TYPE_STRING: _TEXT,
    F.TYPE_BYTES: st.binary(max_size=200),
    F.TYPE_UINT32: st.integers(0, 2**32 - 1),
    F.TYPE_UINT64: st.integers(0, 2**64 - 1),
    F.TYPE_BOOL: st.booleans(),
    F.TYPE_DOUBLE: st.one_of(st.floats(), st.sampled_from([0.0, 0.5, 1.0, -1.0])),
}


def _field_value(field: descriptor.FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    if field.type == F.TYPE_MESSAGE:
        if field.message_type.GetOptions().map_entry:
            key, value = field.message_type.fields_by_name["key"], field.message_type.fields_by_name["value"]
            return st.dictionaries(_SCALARS[key.type], _SCALARS[value.type], max_size=3)
        return _message_fields(field.message_type, depth + 1)
    return _SCALARS[field.type]


def _message_fields(desc: descriptor.Descriptor, depth: int = 0) -> st.SearchStrategy[dict[str, Any]]:
    if depth > 2:
        return st.just({})
    parts = {}
    for field in desc.fields:
        value = _field_value(field, depth)
        if field.is_repeated and not (
            field.type == F.TYPE_MESSAGE and field.message_type.GetOptions().map_entry
        ):
            value = st.lists(value, max_size=4)
        parts[field.name] = st.one_of(st.none(), value)
    return st.fixed_dictionaries(parts).map(lambda d: {k: v for k, v in d.items() if v is not None})


def _build(cls: type[Any], fields: dict[str, Any]) -> Any:
    msg = cls()
    for name, value in fields.items():
        field = cls.DESCRIPTOR.fields_by_name[name]
        if field.type == F.TYPE_MESSAGE and not field.message_type.GetOptions().map_entry:
            getattr(msg, name).CopyFrom(_build(getattr(msg, name).__class__, value))
        elif isinstance(value, dict):
            getattr(msg, name).update(value)
        elif isinstance(value, list):
            getattr(msg, name).extend(value)
        else:
            setattr(msg, name, value)
    return msg


def _requests(rpc: Rpc) -> st.SearchStrategy[list[Any]]:
    one = st.one_of(
        _message_fields(rpc.method.input_type).map(lambda f: _build(rpc.request_class, f)),
        st.binary(max_size=64),  # bytes that may not parse at all
    )
    if rpc.method.client_streaming:
        return st.lists(one, min_size=0, max_size=3)
    return one.map(lambda m: [m])


RPCS = list(all_rpcs())


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    base: Path = tmp_path_factory.mktemp("fuzz")
    (base / "policies").mkdir()
    (base / "policies" / "gp-ingest.yaml").write_text(GP_POLICY, encoding="utf-8")
    gw = start_gateway(
        GatewaySettings(port=0, insecure=True, data_dir=base / "data", policies=base / "policies")
    )
    try:
        yield gw
    finally:
        gw.stop(grace=None)


@pytest.fixture(scope="module")
def channel(gateway: GatewayServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(gateway.address) as ch:
        yield ch


@pytest.mark.parametrize("rpc", RPCS, ids=[r.path.rsplit(".", 1)[1] for r in RPCS])
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_when_an_rpc_gets_malformed_input_then_only_client_errors_come_back(
    rpc: Rpc, channel: grpc.Channel, data: st.DataObject
) -> None:
    requests = data.draw(_requests(rpc))
    try:
        rpc.call(channel, requests)
        code = C.OK
    except grpc.RpcError as exc:
        code = exc.code()
        details = exc.details() or ""
        assert "Traceback" not in details
    assert code in CLIENT_ERRORS, (rpc.path, code)
    status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert status.status == health_pb2.HealthCheckResponse.SERVING
