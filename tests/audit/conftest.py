from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from pseudogate.audit import AuditEvent, AuditLog, build_event
from pseudogate.core.keyring import EXAMPLE_KEYRING, Keyring, Signer
from pseudogate.core.manifest import load_public_key_pem


@pytest.fixture(scope="session")
def signer() -> Signer:
    return Keyring.load(EXAMPLE_KEYRING).signer()


@pytest.fixture(scope="session")
def public_key(signer: Signer) -> Ed25519PublicKey:
    return load_public_key_pem(signer.public_key_pem())


class StepClock:
    """A clock that advances one millisecond per reading: deterministic event times."""

    def __init__(self) -> None:
        self.now = dt.datetime(2025, 6, 1, 9, 0, 0, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        self.now += dt.timedelta(milliseconds=1)
        return self.now


@pytest.fixture
def clock() -> StepClock:
    return StepClock()


def sample_event(n: int = 0, *, status: str = "OK") -> AuditEvent:
    return build_event(
        organisation="gp-denbigh",
        role="provider",
        method="/pseudogate.v1.TokenisationService/Tokenise",
        status=status,
        dataset="gp_diagnoses",
        key_ids=["lk-1"],
        counts={"values": n},
    )


@pytest.fixture
def open_log(
    tmp_path: Path, signer: Signer, clock: StepClock
) -> Iterator[Callable[..., AuditLog]]:
    opened: list[AuditLog] = []

    def factory(**options: Any) -> AuditLog:
        options.setdefault("checkpoint_seconds", 0)
        options.setdefault("clock", clock)
        log = AuditLog.open(tmp_path / "audit.sqlite3", signer=signer, **options)
        opened.append(log)
        return log

    yield factory
    for log in opened:
        log.close()
