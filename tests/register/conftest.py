"""One real gateway run and its register, shared by the register's tests (built once)."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from pseudogate.core.keyring import EXAMPLE_KEYRING, Keyring
from pseudogate.register import PublicKey, RegisterFacts, build_register, public_keys_of
from tests.register.gateway_run import GatewayRun, gateway_run


@pytest.fixture(scope="package")
def run(tmp_path_factory: pytest.TempPathFactory) -> GatewayRun:
    return gateway_run(tmp_path_factory.mktemp("gateway"))


@pytest.fixture(scope="package")
def public_keys() -> list[PublicKey]:
    return public_keys_of(Keyring.load(EXAMPLE_KEYRING))


@pytest.fixture(scope="package")
def built(
    run: GatewayRun, public_keys: list[PublicKey], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, RegisterFacts]:
    site = tmp_path_factory.mktemp("register") / "site"
    facts = build_register(run.data_dir, site, public_keys=public_keys)
    return site, facts


@pytest.fixture(scope="package")
def site(built: tuple[Path, RegisterFacts]) -> Path:
    return built[0]


@pytest.fixture(scope="package")
def before_register(
    run: GatewayRun, public_keys: list[PublicKey], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, RegisterFacts]:
    """The run's register as if its first release had been made before manifests were kept."""
    base = tmp_path_factory.mktemp("before-register")
    data = base / "data"
    shutil.copytree(run.data_dir, data, ignore=shutil.ignore_patterns("store.lock"))
    with sqlite3.connect(data / "catalog.sqlite3") as db:
        db.execute("DELETE FROM released_manifests WHERE id = 1")
    facts = build_register(data, base / "site", public_keys=public_keys)
    return base / "site", facts
