"""TokeniseStream: a fast client cannot make the server buffer without bound; domains config."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from pseudogate.core.errors import ConfigurationError
from pseudogate.core.tokenisation import load_domain_config
from pseudogate.service.app import GatewaySettings, start_gateway
from pseudogate.service.server import GatewayServer
from pseudogate.v1 import tokenisation_pb2 as pb
from pseudogate.v1 import tokenisation_pb2_grpc as pb_grpc

BATCH = ["943 476 5919"] * 10_000  # ~130 KB per message


def test_when_a_client_sends_without_reading_then_the_server_stops_taking_batches(
    insecure_gateway: GatewayServer,
) -> None:
    sent = 0
    lock = threading.Lock()

    def requests() -> Iterator[pb.TokeniseStreamRequest]:
        nonlocal sent
        for i in range(2_000):  # ~260 MB if nothing pushed back
            with lock:
                sent += 1
            yield pb.TokeniseStreamRequest(domain="nhs_number", values=BATCH, batch_id=i)

    with grpc.insecure_channel(insecure_gateway.address) as channel:
        replies = pb_grpc.TokenisationServiceStub(channel).TokeniseStream(requests())
        first = next(replies)  # the stream works...
        assert first.batch_id == 0
        time.sleep(3)  # ...but nobody reads the responses now
        with lock:
            stalled_at = sent
        time.sleep(1)
        with lock:
            assert sent == stalled_at, "the client kept sending: nothing pushed back"
        assert stalled_at < 200, f"{stalled_at} batches were taken before flow control stopped them"
        replies.cancel()


def test_when_a_config_names_domains_then_the_server_knows_exactly_those(tmp_path: Path) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text("domains:\n  carer: nhs_number\n  contact: email\nmax_batch_values: 3\n")
    gateway = start_gateway(
        GatewaySettings(port=0, insecure=True, data_dir=tmp_path / "d", config=config)
    )
    try:
        with grpc.insecure_channel(gateway.address) as ch:
            stub = pb_grpc.TokenisationServiceStub(ch)
            carer = stub.Tokenise(pb.TokeniseRequest(domain="carer", values=["9434765919"]))
            assert carer.tokens[0].startswith("example-link_")
            with pytest.raises(grpc.RpcError) as unknown:
                stub.Tokenise(pb.TokeniseRequest(domain="nhs_number", values=["9434765919"]))
            assert unknown.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            with pytest.raises(grpc.RpcError) as big:
                stub.Tokenise(pb.TokeniseRequest(domain="contact", values=["a@b.c"] * 4))
            assert big.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    finally:
        gateway.stop(grace=None)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("domains: {x: shoe_size}\n", "unknown kind"),
        ("domains: {'Bad Name': email}\n", "must match"),
        ("domain: {x: email}\n", "unknown setting"),
        ("domains: {}\n", "'domains' must map"),
        ("domains: {x: email}\nmax_batch_values: 0\n", "positive integer"),
        ("domains: [\n", "not valid YAML"),
    ],
)
def test_when_a_config_is_malformed_then_it_is_refused_clearly(
    tmp_path: Path, text: str, message: str
) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(text)
    with pytest.raises(ConfigurationError, match=message):
        load_domain_config(config)
