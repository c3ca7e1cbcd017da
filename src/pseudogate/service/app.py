"""Assemble a gateway from settings: keyring, domains, store, audit log, transport."""

from __future__ import annotations

import logging
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pseudogate.audit import AUDIT_DB_NAME, AuditEvent, AuditLog
from pseudogate.audit.reconcile import reconcile
from pseudogate.core.clock import Clock, utc_now
from pseudogate.core.errors import ConfigurationError, FailedPrecondition, PermissionDenied
from pseudogate.core.fileio import make_private_dir, make_private_file, shared_entries
from pseudogate.core.keyring import EXAMPLE_KEYRING, Keyring, Purpose
from pseudogate.core.policy import Policy
from pseudogate.core.rights import RightsSettings
from pseudogate.core.tokenisation import Tokenisation, load_domain_config
from pseudogate.gateway import Store, load_policy_registry
from pseudogate.service.access import InsecureAccess, MtlsAccess
from pseudogate.service.admin import AdminServicer
from pseudogate.service.audit import AuditServicer
from pseudogate.service.datasets import DatasetServicer
from pseudogate.service.extracts import ExtractServicer
from pseudogate.service.limits import StreamLimits
from pseudogate.service.rights import ExpirySweep, RightsServicer
from pseudogate.service.server import GatewayServer, ServiceBinding, build_server
from pseudogate.service.tokenisation import TokenisationServicer
from pseudogate.service.transport import TlsFiles, check_transport
from pseudogate.store.catalog import Catalog
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
    tokenisation_pb2,
    tokenisation_pb2_grpc,
)

if TYPE_CHECKING:
    from pseudogate.batch.extracts import ClusterAnonymiser

__all__ = ["GatewaySettings", "load_keyring", "start_gateway"]

log = logging.getLogger("pseudogate.server")


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    host: str = "127.0.0.1"
    port: int = 50051
    keyring: Path | None = None  # None: the example keyring (warned about loudly)
    config: Path | None = None
    data_dir: Path | None = None
    policies: Path | None = None  # None: no registered ingestion policies
    tls: TlsFiles | None = None
    insecure: bool = False
    production: bool = False
    audit_write_timeout: float = 5.0  # seconds to wait for the audit database before failing closed
    # SQLite durability of each audit commit. NORMAL (WAL): a committed event survives a crash of
    # the gateway; only a power loss can take the last few. FULL: fsync on every event.
    audit_synchronous: str = "NORMAL"
    # The gateway's one clock: catalog and manifest times, project expiry days, audit event
    # times (tests inject a fixed one; core/clock.py).
    clock: Clock = utc_now
    # Fair sharing (service/limits.py, docs/operations.md): idle client streams are closed;
    # streams and extracts per organisation, and extracts gateway-wide, are limited.
    limits: StreamLimits = field(default_factory=StreamLimits)
    storage_quota_per_org: int | None = None  # bytes of stored Parquet; None: no quota
    # People's rights requests: days to approval before expiry, tokens per re-identification.
    rights: RightsSettings = field(default_factory=RightsSettings)
    # Extracts anonymised on this Dask scheduler (docs/operations.md, "Extracts on a Dask
    # cluster"); None: in this process, and Dask is never imported.
    dask_scheduler: str | None = None


def _service_name(module: Any, name: str) -> str:
    return str(module.DESCRIPTOR.services_by_name[name].full_name)


def load_keyring(settings: GatewaySettings) -> Keyring:
    keyring = Keyring.load(settings.keyring or EXAMPLE_KEYRING)
    keyring.require_purposes(Purpose.LINKAGE, Purpose.PROJECT, Purpose.SIGNING)
    if settings.production:
        if keyring.is_example:
            raise ConfigurationError("--production refuses the example keyring: its keys are public")
        if settings.keyring is not None:  # the loader exempts only folders named keys_example
            _refuse_shared(settings.keyring, what="keyring file")
        if keyring.has_cleartext:
            raise ConfigurationError(
                "--production refuses cleartext key material: wrap every key under the master key "
                "(pseudogate keys generate --wrap)"
            )
    return keyring


def _refuse_shared(path: Path, *, what: str) -> None:
    """--production: refuse ``path`` (and, for a folder, anything in it) open to group or others."""
    if not path.exists():
        return
    if path.is_file():
        mode = stat.S_IMODE(path.stat().st_mode)
        shared = [(path, mode)] if mode & 0o077 else []
    else:
        shared = shared_entries(path)
    if shared:
        listed = ", ".join(f"{p} ({mode:04o})" for p, mode in shared[:5])
        more = f" and {len(shared) - 5} more" if len(shared) > 5 else ""
        fix = f"chmod -R go-rwx {path}" if path.is_dir() else f"chmod 600 {path}"
        raise ConfigurationError(
            f"--production refuses a {what} accessible by group or others: {listed}{more}; "
            f"run: {fix}"
        )


def _prepare_data_dir(settings: GatewaySettings, data_dir: Path) -> None:
    """Start-up checks before the store opens: private modes, a catalog not silently lost."""
    if settings.production:
        _refuse_shared(data_dir, what="data directory")
    make_private_dir(data_dir)
    mode = stat.S_IMODE(data_dir.stat().st_mode)
    if mode & 0o077:
        log.warning(
            "data directory %s is accessible by group or others (mode %04o); --production "
            "refuses it; run: chmod -R go-rwx %s",
            data_dir,
            mode,
            data_dir,
        )
    if (data_dir / AUDIT_DB_NAME).exists() and not (data_dir / Catalog.FILE_NAME).exists():
        raise FailedPrecondition(
            f"data directory {data_dir} has an audit log but no {Catalog.FILE_NAME}: the record "
            "of its datasets, projects and opt-outs is missing; no file was moved or deleted. "
            f"Restore {Catalog.FILE_NAME} from the backup taken with this directory; to start "
            "afresh on purpose, use a new data directory"
        )


def _cluster_anonymiser(settings: GatewaySettings, data_dir: Path) -> ClusterAnonymiser | None:
    """The anonymiser of ``--dask-scheduler`` (its address checked now), or None."""
    if settings.dask_scheduler is None:
        return None
    from pseudogate.batch.extracts import CLUSTER_WORK_DIR, ClusterAnonymiser  # no Dask yet

    return ClusterAnonymiser(settings.dask_scheduler, work_dir=data_dir / CLUSTER_WORK_DIR)


def _private_sqlite(path: Path) -> None:
    """Mode 0600 for a SQLite database and any -wal/-shm/-journal beside it."""
    make_private_file(path)
    for suffix in ("-wal", "-shm", "-journal"):
        side = path.with_name(path.name + suffix)
        if side.exists():
            make_private_file(side)


def start_gateway(
    settings: GatewaySettings, *, notice: Callable[[str], None] | None = None
) -> GatewayServer:
    """Build every service over the core and start serving.

    ``notice`` receives start-up warnings an operator must see (the CLI prints them to
    stderr); they are logged as warnings too.
    """
    transport = check_transport(
        host=settings.host,
        tls=settings.tls,
        insecure=settings.insecure,
        production=settings.production,
    )
    if settings.data_dir is None:
        raise ConfigurationError("a data directory is required (--data-dir): it holds the audit log")
    keyring = load_keyring(settings)
    policies: Mapping[str, Policy] = (
        load_policy_registry(settings.policies) if settings.policies is not None else {}
    )
    tokenisation = Tokenisation(keyring=keyring, config=load_domain_config(settings.config))
    anonymiser = _cluster_anonymiser(settings, settings.data_dir)
    _prepare_data_dir(settings, settings.data_dir)
    store = Store.open(
        settings.data_dir,
        keyring=keyring,
        policies=policies,
        clock=settings.clock,
        storage_quota_per_org=settings.storage_quota_per_org,
        rights=settings.rights,
        anonymiser=anonymiser,
    )
    if anonymiser is not None:
        anonymiser.clear()  # the store's lock is held: no other gateway uses the folder
    if store.sweep.quarantined and notice is not None:
        notice(f"WARNING: {store.sweep.describe()}")
    signer = keyring.signer()
    try:
        _private_sqlite(settings.data_dir / AUDIT_DB_NAME)
        audit_log = AuditLog.open(
            settings.data_dir / AUDIT_DB_NAME,
            signer=signer,
            clock=settings.clock,
            write_timeout=settings.audit_write_timeout,
            synchronous=settings.audit_synchronous,
        )
        _private_sqlite(settings.data_dir / AUDIT_DB_NAME)
    except BaseException:
        store.close()
        raise
    try:
        # Before serving: a change audited but never committed (a crash) gets a follow-up event.
        reconcile(audit_log, store.catalog)
    except BaseException:
        audit_log.close()
        store.close()
        raise

    # Subject access also reads the extracts released before manifests were kept (their events).
    store.rights.extract_events = lambda: audit_log.events_of(
        "/pseudogate.v1.ExtractService/CreateExtract"
    )

    def audit(event: AuditEvent) -> None:
        audit_log.append(event)  # validates the event's shape; malformed names become null

    # Requests past their expiry get their expiry recorded (audited) now, before serving, and
    # again before every RightsService call and every read of the register.
    sweep = ExpirySweep(store.rights, audit)
    try:
        sweep()
    except BaseException:
        audit_log.close()
        store.close()
        raise

    def request_register() -> dict[str, Any]:
        sweep()
        return store.rights.register()

    def find_policy(name: str) -> Policy | None:
        if name in policies:
            return policies[name]
        if name.startswith("project/"):
            try:
                return store.project_policy(name.removeprefix("project/"))
            except PermissionDenied:  # unknown project: simply no such policy
                return None
        return None

    services = [
        ServiceBinding(
            TokenisationServicer(tokenisation),
            tokenisation_pb2_grpc.add_TokenisationServiceServicer_to_server,
            _service_name(tokenisation_pb2, "TokenisationService"),
        ),
        ServiceBinding(
            DatasetServicer(store),
            dataset_pb2_grpc.add_DatasetServiceServicer_to_server,
            _service_name(dataset_pb2, "DatasetService"),
        ),
        ServiceBinding(
            ExtractServicer(store, clock=settings.clock),
            extract_pb2_grpc.add_ExtractServiceServicer_to_server,
            _service_name(extract_pb2, "ExtractService"),
        ),
        ServiceBinding(
            AdminServicer(store=store, keyring=keyring),
            admin_pb2_grpc.add_AdminServiceServicer_to_server,
            _service_name(admin_pb2, "AdminService"),
        ),
        ServiceBinding(
            AuditServicer(
                log=audit_log,
                signer=signer,
                policies=find_policy,
                public_keys=keyring.public_signing_keys(),
                request_register=request_register,
            ),
            audit_pb2_grpc.add_AuditServiceServicer_to_server,
            _service_name(audit_pb2, "AuditService"),
        ),
        ServiceBinding(
            RightsServicer(store.rights, sweep=sweep),
            rights_pb2_grpc.add_RightsServiceServicer_to_server,
            _service_name(rights_pb2, "RightsService"),
        ),
    ]
    access = InsecureAccess() if transport.plaintext else MtlsAccess()
    try:
        return build_server(
            services=services,
            access=access,
            audit=audit,
            transport=transport,
            port=settings.port,
            limits=settings.limits,
            on_stop=[audit_log.close, store.close],
        )
    except BaseException:
        audit_log.close()
        store.close()
        raise
