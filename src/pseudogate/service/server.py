"""Server construction, separate from serving: tests bind port 0 and read the port back."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from pseudogate.core.errors import ConfigurationError
from pseudogate.service.interceptors import AccessControl, AuditSink, GatewayInterceptor
from pseudogate.service.limits import RESERVED_WORKERS, FairShare, StreamLimits
from pseudogate.service.transport import LOOPBACK_PLAINTEXT, TlsFiles, Transport, is_loopback

# TlsFiles and is_loopback live in service/transport.py; imported from here too.
__all__ = ["GatewayServer", "ServiceBinding", "TlsFiles", "Transport", "build_server", "is_loopback"]

log = logging.getLogger("pseudogate.server")

MAX_MESSAGE_BYTES = 64 * 1024 * 1024  # an Arrow IPC message may be 32 MiB; room for framing


@dataclass(frozen=True, slots=True)
class ServiceBinding:
    """A servicer, the generated function that adds it, and its full service name."""

    servicer: Any
    add_to_server: Callable[[Any, grpc.Server], None]
    full_name: str


@dataclass
class GatewayServer:
    server: grpc.Server
    port: int
    health: health.HealthServicer
    on_stop: list[Callable[[], None]]
    fair_share: FairShare | None = None  # the slots held now (service/limits.py)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self, grace: float | None = 2.0) -> None:
        for name in ("",):
            self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        self.server.stop(grace).wait()
        for fn in self.on_stop:
            fn()


def build_server(
    *,
    services: Sequence[ServiceBinding],
    access: AccessControl,
    audit: AuditSink | None,
    transport: Transport = LOOPBACK_PLAINTEXT,
    port: int = 0,
    max_workers: int = 16,
    limits: StreamLimits | None = None,
    on_stop: Sequence[Callable[[], None]] = (),
) -> GatewayServer:
    """Create and start a server on ``transport`` (checked by service/transport.py).

    Streams may take all workers but ``RESERVED_WORKERS``: those stay for unary calls and
    health checks, whatever streams are open (see service/limits.py).
    """
    if max_workers <= RESERVED_WORKERS:
        raise ConfigurationError(f"the gateway needs more than {RESERVED_WORKERS} worker threads")
    fair_share = FairShare(limits or StreamLimits(), max_streams=max_workers - RESERVED_WORKERS)
    options = [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.so_reuseport", 0),
    ]
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="pseudogate-rpc"),
        interceptors=[GatewayInterceptor(access=access, audit=audit, fair_share=fair_share)],
        options=options,
        maximum_concurrent_rpcs=max_workers * 4,
    )
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = []
    for binding in services:
        binding.add_to_server(binding.servicer, server)
        names.append(binding.full_name)
        health_servicer.set(binding.full_name, health_pb2.HealthCheckResponse.SERVING)
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection(
        [*names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME],
        server,
    )
    host = transport.host
    address = f"{host}:{port}" if ":" not in host else f"[{host.strip('[]')}]:{port}"
    if transport.tls is None:
        bound = server.add_insecure_port(address)
    else:
        bound = server.add_secure_port(address, transport.tls.credentials())
    if bound == 0:
        raise ConfigurationError(f"cannot bind {address}: address in use or not available")
    server.start()
    log.info("gateway listening on %s:%d (%s)", host, bound, transport.describe())
    stops = [*on_stop, fair_share.close]
    return GatewayServer(server, bound, health_servicer, stops, fair_share)
