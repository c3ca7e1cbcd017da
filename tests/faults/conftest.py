"""Fixtures of the fault suite: a template data directory, real gateways, the invariant check."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from pseudogate.audit import AUDIT_DB_NAME
from pseudogate.core.keyring import EXAMPLE_KEYRING, Keyring
from pseudogate.core.manifest import load_public_key_pem
from pseudogate.service.app import GatewaySettings, start_gateway
from pseudogate.service.server import GatewayServer

from .invariants import InvariantReport, check_invariant
from .processes import ServeProcess
from .workload import RAW_IDENTIFIERS, SEED, build_template, write_policies


@pytest.fixture(scope="session")
def policies_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_policies(tmp_path_factory.mktemp("fault-policies"))


@pytest.fixture(scope="session")
def public_keys() -> list[Ed25519PublicKey]:
    """Every signing key of the keyring the gateways run on (the EXAMPLE keyring)."""
    keys = Keyring.load(EXAMPLE_KEYRING).public_signing_keys()
    return [load_public_key_pem(pem) for _, pem in keys]


@pytest.fixture(scope="session")
def template_dir(tmp_path_factory: pytest.TempPathFactory, policies_dir: Path) -> Path:
    """A stopped gateway's data directory holding two datasets, a project and opt-outs."""
    data = tmp_path_factory.mktemp("fault-template") / "data"
    gateway = start_gateway(
        GatewaySettings(port=0, insecure=True, data_dir=data, policies=policies_dir)
    )
    try:
        with grpc.insecure_channel(gateway.address) as channel:
            build_template(channel)
    finally:
        gateway.stop(grace=None)
    return data


@pytest.fixture
def data_dir(template_dir: Path, tmp_path: Path) -> Path:
    """A fresh copy of the template for one test."""
    return Path(shutil.copytree(template_dir, tmp_path / "data"))


@pytest.fixture
def serve(policies_dir: Path, tmp_path: Path) -> Iterator[Callable[[Path], ServeProcess]]:
    """Start ``pseudogate serve`` processes; every one still running is killed at the end."""
    started: list[ServeProcess] = []
    logs = tmp_path / "logs"
    logs.mkdir(exist_ok=True)

    def start(data: Path) -> ServeProcess:
        process = ServeProcess(
            data_dir=data, policies=policies_dir, logs=logs, name=f"serve{len(started)}"
        )
        started.append(process)
        return process

    try:
        yield start
    finally:
        for process in started:
            process.kill()


@pytest.fixture
def gateway(policies_dir: Path) -> Iterator[Callable[..., GatewayServer]]:
    """Start in-process gateways (for settings that ``serve`` has no flag for); each is stopped
    at the end."""
    started: list[GatewayServer] = []

    def start(data: Path, **settings: Any) -> GatewayServer:
        options: dict[str, Any] = {"port": 0, "insecure": True, "policies": policies_dir}
        server = start_gateway(GatewaySettings(data_dir=data, **options | settings))
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop(grace=None)


@pytest.fixture
def invariant(public_keys: list[Ed25519PublicKey]) -> Callable[..., InvariantReport]:
    """Check the invariant of a stopped data directory and print what was checked; fail on
    problems unless ``fail=False`` (the caller then judges the report)."""

    def check(
        data: Path, *, context: str = "", fail: bool = True, **options: Any
    ) -> InvariantReport:
        report = check_invariant(
            data, public_keys=public_keys, raw_identifiers=RAW_IDENTIFIERS, **options
        )
        print(report)
        assert not (fail and report.problems), f"[fault seed {SEED}] {context}\n{report}"
        return report

    return check


@contextlib.contextmanager
def _audit_write_lock(data: Path) -> Iterator[None]:
    blocker = sqlite3.connect(data / AUDIT_DB_NAME, isolation_level=None, timeout=10)
    try:
        blocker.execute("BEGIN IMMEDIATE")  # the gateway's next audit write waits for this
        yield
    finally:
        if blocker.in_transaction:
            blocker.execute("ROLLBACK")
        blocker.close()


@pytest.fixture
def audit_write_lock() -> Callable[[Path], contextlib.AbstractContextManager[None]]:
    """``with audit_write_lock(data_dir):`` holds the audit database's write lock."""
    return _audit_write_lock


#: A writable folder on a small filesystem that someone mounted for the full-disk tests, for
#: machines where the test may not mount one itself.
SMALL_FS_ENV = "PSEUDOGATE_FAULT_SMALL_FS"
SMALL_FS_SIZE = 16 * 1024 * 1024
_SMALL_FS_LIMIT = 256 * 1024 * 1024  # filling more than this would make the test slow


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """An empty folder on a small filesystem the test may fill: a tmpfs it mounts (root only),
    or a folder under $PSEUDOGATE_FAULT_SMALL_FS. Skips, saying how to enable it, otherwise."""
    preset = os.environ.get(SMALL_FS_ENV)
    if preset:
        folder = Path(preset) / f"pseudogate-faults-{os.getpid()}-{tmp_path.name}"
        folder.mkdir()
        try:
            stat = os.statvfs(folder)
            if stat.f_bavail * stat.f_frsize > _SMALL_FS_LIMIT:
                pytest.skip(f"{SMALL_FS_ENV}={preset} has more than 256 MiB free: too big to fill")
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return
    how = (
        f"run the tests as root (with CAP_SYS_ADMIN), or mount a small filesystem yourself "
        f"(e.g. sudo mount -t tmpfs -o size=16m tmpfs /mnt/small && sudo chown $USER /mnt/small) "
        f"and set {SMALL_FS_ENV}=/mnt/small"
    )
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip(f"full-disk tests need a small filesystem: {how}")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={SMALL_FS_SIZE},mode=0700", "tmpfs", mount_point],
        capture_output=True, text=True, check=False,
    )
    if mounted.returncode != 0:
        reason = (mounted.stderr.strip().splitlines() or ["mount failed"])[0]
        pytest.skip(f"cannot mount a tmpfs ({reason}): {how}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], capture_output=True, check=False)
