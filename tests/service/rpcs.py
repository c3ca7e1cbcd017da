"""Generic access to every RPC of pseudogate.v1 from its descriptors (for matrix and fuzz tests)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import descriptor, message_factory

from pseudogate.v1 import (
    admin_pb2,
    audit_pb2,
    dataset_pb2,
    extract_pb2,
    rights_pb2,
    tokenisation_pb2,
)

MODULES = (tokenisation_pb2, dataset_pb2, extract_pb2, admin_pb2, audit_pb2, rights_pb2)


@dataclass(frozen=True)
class Rpc:
    path: str
    method: descriptor.MethodDescriptor

    @property
    def request_class(self) -> type[Any]:
        return message_factory.GetMessageClass(self.method.input_type)

    @property
    def response_class(self) -> type[Any]:
        return message_factory.GetMessageClass(self.method.output_type)

    def call(self, channel: grpc.Channel, requests: list[Any], *, timeout: float = 20) -> list[Any]:
        """Call with these request messages (or raw bytes); return all responses."""
        serialise = lambda m: m if isinstance(m, bytes) else m.SerializeToString()
        kwargs = {
            "request_serializer": serialise,
            "response_deserializer": self.response_class.FromString,
        }
        cs, ss = self.method.client_streaming, self.method.server_streaming
        if not cs and not ss:
            return [channel.unary_unary(self.path, **kwargs)(requests[0], timeout=timeout)]
        if not cs and ss:
            return list(channel.unary_stream(self.path, **kwargs)(requests[0], timeout=timeout))
        if cs and not ss:
            return [channel.stream_unary(self.path, **kwargs)(iter(requests), timeout=timeout)]
        return list(channel.stream_stream(self.path, **kwargs)(iter(requests), timeout=timeout))


def all_rpcs() -> Iterator[Rpc]:
    for module in MODULES:
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                yield Rpc(f"/{service.full_name}/{method.name}", method)


def status_of(rpc: Rpc, channel: grpc.Channel, requests: list[Any]) -> tuple[grpc.StatusCode, str]:
    try:
        rpc.call(channel, requests)
    except grpc.RpcError as exc:
        return exc.code(), exc.details() or ""
    return grpc.StatusCode.OK, ""
