"""Assemble a gateway from settings: keyring, domains, store, audit log, transport."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pseudogate.audit import AUDIT_DB_NAME, AuditLog, build_event
from pseudogate.errors import ConfigurationError
from pseudogate.keyring import EXAMPLE_KEYRING, Keyring, Purpose
from pseudogate.service.access import InsecureAccess
from pseudogate.service.server import GatewayServer, ServiceBinding, TlsFiles, build_server
from pseudogate.service.tokenisation import TokenisationServicer
from pseudogate.tokenisation import Tokenisation, load_domain_config
from pseudogate.v1 import tokenisation_pb2, tokenisation_pb2_grpc

__all__ = ["GatewaySettings", "start_gateway"]

log = logging.getLogger("pseudogate.server")


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    host: str = "127.0.0.1"
    port: int = 50051
    keyring: Path | None = None  # None: the example keyring (warned about loudly)
    config: Path | None = None
    data_dir: Path | None = None
    policies: Path | None = None
    tls: TlsFiles | None = None
    insecure: bool = False
    production: bool = False
    audit_write_timeout: float = 5.0  # seconds to wait for the audit database before failing closed


def _service_name(module: object, name: str) -> str:
    return module.DESCRIPTOR.services_by_name[name].full_name  # type: ignore[attr-defined]


def load_keyring(settings: GatewaySettings) -> Keyring:
    keyring = Keyring.load(settings.keyring or EXAMPLE_KEYRING)
    keyring.require_purposes(Purpose.LINKAGE, Purpose.PROJECT, Purpose.SIGNING)
    if settings.production:
        if keyring.is_example:
            raise ConfigurationError("--production refuses the example keyring: its keys are public")
        if keyring.has_cleartext:
            raise ConfigurationError(
                "--production refuses cleartext key material: wrap every key under the master key "
                "(pseudogate keys generate --wrap)"
            )
    return keyring


def start_gateway(settings: GatewaySettings) -> GatewayServer:
    """Build every service over the core and start serving."""
    if settings.tls is None and not settings.insecure:
        raise ConfigurationError(
            "no transport security: give --ca, --cert and --key for mTLS, "
            "or --insecure for plaintext on loopback"
        )
    if settings.production and settings.insecure:
        raise ConfigurationError("--production refuses --insecure")
    if settings.data_dir is None:
        raise ConfigurationError("a data directory is required (--data-dir): it holds the audit log")
    keyring = load_keyring(settings)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    audit_log = AuditLog.open(
        settings.data_dir / AUDIT_DB_NAME,
        signer=keyring.signer(),
        write_timeout=settings.audit_write_timeout,
    )

    def audit(event: Mapping[str, Any]) -> None:
        audit_log.append(build_event(**event))

    tokenisation = Tokenisation(keyring=keyring, config=load_domain_config(settings.config))
    services = [
        ServiceBinding(
            TokenisationServicer(tokenisation),
            tokenisation_pb2_grpc.add_TokenisationServiceServicer_to_server,
            _service_name(tokenisation_pb2, "TokenisationService"),
        )
    ]
    access = InsecureAccess()
    try:
        return build_server(
            services=services,
            access=access,
            audit=audit,
            host=settings.host,
            port=settings.port,
            tls=settings.tls,
            on_stop=[audit_log.close],
        )
    except BaseException:
        audit_log.close()
        raise
