"""Real gateway servers on free loopback ports."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from pseudogate.service.app import GatewaySettings, start_gateway
from pseudogate.service.server import GatewayServer


@pytest.fixture
def insecure_gateway(tmp_path: Path) -> Iterator[GatewayServer]:
    gateway = start_gateway(GatewaySettings(port=0, insecure=True, data_dir=tmp_path / "data"))
    try:
        yield gateway
    finally:
        gateway.stop(grace=None)


@pytest.fixture
def channel(insecure_gateway: GatewayServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(insecure_gateway.address) as ch:
        grpc.channel_ready_future(ch).result(timeout=10)
        yield ch
