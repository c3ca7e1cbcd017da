"""Fixtures for the store tests: a keyring with known material, policies, a clock, a store."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pseudogate.core.keyring import Keyring
from pseudogate.core.policy import Policy, parse_policy
from pseudogate.gateway import Store

from .helpers import COUNCIL_POLICY, GP_POLICY, Clock, keyring_document


@pytest.fixture
def keyring() -> Keyring:
    return Keyring.from_document(keyring_document())


@pytest.fixture
def policies() -> dict[str, Policy]:
    return {
        "gp": parse_policy(GP_POLICY, origin="gp.yaml"),
        "council": parse_policy(COUNCIL_POLICY, origin="council.yaml"),
    }


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC))


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def store(
    data_dir: Path, keyring: Keyring, policies: dict[str, Policy], clock: Clock
) -> Iterator[Store]:
    with Store.open(data_dir, keyring=keyring, policies=policies, clock=clock) as opened:
        yield opened
