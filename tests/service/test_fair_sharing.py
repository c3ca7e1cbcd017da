"""Fair sharing: one organisation's streams cannot stall the gateway for everyone else.

Real gateways on loopback. Stalled clients are request generators that send a header (and
perhaps some data) and then wait on an event; they are released at the end of each test.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from pseudogate.audit import AUDIT_DB_NAME
from pseudogate.cli import build_parser, main
from pseudogate.cli.serve import settings_from_args
from pseudogate.core.authz import Identity, Role
from pseudogate.service.access import InsecureAccess
from pseudogate.service.app import GatewaySettings, start_gateway
from pseudogate.service.limits import StreamLimits
from pseudogate.service.server import GatewayServer, ServiceBinding, TlsFiles, build_server
from pseudogate.tools.certs import write_dev_certs
from pseudogate.tools.demo import GP_POLICY
from pseudogate.v1 import (
    dataset_pb2,
    dataset_pb2_grpc,
    extract_pb2,
    extract_pb2_grpc,
    tokenisation_pb2,
    tokenisation_pb2_grpc,
)
from tests.store.helpers import ipc, people

C = grpc.StatusCode
SUBMIT = "/pseudogate.v1.DatasetService/SubmitDataset"


def _gp_payload(n: int = 5) -> bytes:
    rows = people(n)
    return ipc(
        {
            "nhs_number": [r["nhs_number"] for r in rows],
            "given_name": [r["given_name"] for r in rows],
            "family_name": [r["family_name"] for r in rows],
            "date_of_birth": [r["date_of_birth"] for r in rows],
            "sex": [r["sex"] for r in rows],
            "postcode": [r["postcode"] for r in rows],
            "diagnosis": ["D1"] * n,
        }
    )


def _header(
    dataset: str = "gp_data", organisation: str = "gp-denbigh"
) -> dataset_pb2.SubmitDatasetRequest:
    return dataset_pb2.SubmitDatasetRequest(
        header=dataset_pb2.SubmissionHeader(
            dataset=dataset, policy="gp-ingest", organisation=organisation
        )
    )


def _stalled(release: threading.Event, *messages: Any) -> Iterator[Any]:
    """Send these messages, then nothing until released."""
    yield from messages
    release.wait()


def _policies(base: Path) -> Path:
    folder = base / "policies"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "gp-ingest.yaml").write_text(GP_POLICY, encoding="utf-8")
    return folder


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Any]:
    """Start insecure gateways with these settings; every one is stopped at the end."""
    started: list[GatewayServer] = []

    def start_with(**settings: Any) -> GatewayServer:
        settings.setdefault("insecure", True)
        gateway = start_gateway(
            GatewaySettings(
                port=0, data_dir=tmp_path / "data", policies=_policies(tmp_path), **settings
            )
        )
        started.append(gateway)
        return gateway

    yield start_with
    for gateway in started:
        gateway.stop(grace=None)


@pytest.fixture
def release() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()


def _events(data_dir: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(data_dir / AUDIT_DB_NAME) as db:
        return [json.loads(b) for (b,) in db.execute("SELECT body FROM events ORDER BY seq")]


def _stored_files(data_dir: Path) -> list[Path]:
    return [
        p for folder in ("datasets", "tmp") for p in (data_dir / folder).rglob("*") if p.is_file()
    ]


def _code(future: grpc.Future, timeout: float = 20) -> tuple[C, str]:
    error = future.exception(timeout=timeout)
    if error is None:
        return C.OK, ""
    return error.code(), error.details() or ""


def _answers_promptly(channel: grpc.Channel) -> None:
    """A health check and a unary Tokenise call answer within a generous deadline."""
    health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    stub = tokenisation_pb2_grpc.TokenisationServiceStub(channel)
    reply = stub.Tokenise(
        tokenisation_pb2.TokeniseRequest(domain="nhs_number", values=["9434765919"]), timeout=5
    )
    assert len(reply.tokens) == 1 and not reply.errors


def _wait_until(condition: Any, timeout: float = 10) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "condition not reached in time"
        time.sleep(0.05)


@pytest.mark.parametrize(
    ("per_org", "open_streams", "refusal"),
    [
        (4, 4, "already has 4 streams open"),  # the per-organisation limit
        (16, 12, "its limit of 12 streams"),  # the gateway-wide limit: 16 workers less 4 reserved
    ],
)
def test_when_one_organisation_stalls_16_submissions_then_extra_ones_are_refused_others_served(
    start: Any,
    release: threading.Event,
    tmp_path: Path,
    per_org: int,
    open_streams: int,
    refusal: str,
) -> None:
    gateway = start(limits=StreamLimits(max_streams_per_org=per_org))
    with grpc.insecure_channel(gateway.address) as channel:
        submit = dataset_pb2_grpc.DatasetServiceStub(channel).SubmitDataset
        calls = [submit.future(_stalled(release, _header()), timeout=60) for _ in range(16)]
        _wait_until(lambda: sum(c.done() for c in calls) >= 16 - open_streams)
        time.sleep(0.5)  # would any more be refused?
        refused = [_code(c) for c in calls if c.done()]
        held = [c for c in calls if not c.done()]
        assert len(refused) == 16 - open_streams
        assert all(code == C.RESOURCE_EXHAUSTED and refusal in details for code, details in refused)
        _answers_promptly(channel)
        release.set()
        assert [_code(c)[0] for c in held] == [C.INVALID_ARGUMENT] * open_streams  # no data sent
    statuses = [e["status"] for e in _events(tmp_path / "data") if e["method"] == SUBMIT]
    assert statuses.count("RESOURCE_EXHAUSTED") == 16 - open_streams, "refusals are audited"


def _reader_threads() -> int:
    return sum(t.name == "pseudogate-stream-reader" for t in threading.enumerate())


def test_when_a_submission_goes_quiet_then_it_is_closed_its_worker_freed_and_nothing_stored(
    start: Any, release: threading.Event, tmp_path: Path
) -> None:
    gateway = start(limits=StreamLimits(idle_timeout=0.5, max_streams_per_org=1))
    with grpc.insecure_channel(gateway.address) as channel:
        submit = dataset_pb2_grpc.DatasetServiceStub(channel).SubmitDataset
        began = time.monotonic()
        quiet = submit.future(
            _stalled(release, _header(), dataset_pb2.SubmitDatasetRequest(arrow_ipc=_gp_payload())),
            timeout=60,
        )
        code, details = _code(quiet)
        assert (code, details.split(";")[0]) == (C.DEADLINE_EXCEEDED, "no message for 0.5 s")
        assert time.monotonic() - began < 10
        assert _stored_files(tmp_path / "data") == [], "the submission was aborted whole"
        # The one stream slot is free again: a prompt submission goes through.
        done = submit(
            iter([_header(), dataset_pb2.SubmitDatasetRequest(arrow_ipc=_gp_payload())]), timeout=20
        )
        assert (done.dataset, done.version, done.rows) == ("gp_data", 1, 5)
    events = [e for e in _events(tmp_path / "data") if e["method"] == SUBMIT]
    assert [e["status"] for e in events] == ["DEADLINE_EXCEEDED", "OK"]
    assert events[0]["dataset"] == "gp_data" and events[0]["organisation"] == "insecure"
    _wait_until(lambda: _reader_threads() == 0)


def test_when_a_submission_would_exceed_the_storage_quota_then_it_is_refused_and_nothing_stored(
    start: Any, tmp_path: Path
) -> None:
    gateway = start(storage_quota_per_org=1_000)  # smaller than any Parquet file of 5 rows
    with grpc.insecure_channel(gateway.address) as channel:
        submit = dataset_pb2_grpc.DatasetServiceStub(channel).SubmitDataset
        with pytest.raises(grpc.RpcError) as refused:
            submit(
                iter([_header(), dataset_pb2.SubmitDatasetRequest(arrow_ipc=_gp_payload())]),
                timeout=20,
            )
    assert refused.value.code() == C.RESOURCE_EXHAUSTED
    assert "storage quota exceeded" in refused.value.details()
    assert "its quota is 1000 bytes" in refused.value.details()
    assert _stored_files(tmp_path / "data") == []
    assert [e["status"] for e in _events(tmp_path / "data") if e["method"] == SUBMIT] == [
        "RESOURCE_EXHAUSTED"
    ]


class _OrgFromMetadata(InsecureAccess):
    """Test access control: the caller names its organisation (a researcher) in metadata."""

    def identify(self, context: grpc.ServicerContext) -> Identity:
        metadata = dict(context.invocation_metadata())
        return Identity.of(str(metadata["x-test-org"]), Role.RESEARCHER)


class _HeldExtracts(extract_pb2_grpc.ExtractServiceServicer):
    """An extract service whose extracts stay open until released."""

    def __init__(self, release: threading.Event) -> None:
        self.release = release
        self.entered = threading.Semaphore(0)

    def CreateExtract(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        self.entered.release()
        self.release.wait(30)
        yield extract_pb2.CreateExtractResponse(manifest_json="{}")


def test_when_extracts_reach_their_limits_then_more_are_refused_until_one_finishes(
    release: threading.Event,
) -> None:
    events: list[dict[str, Any]] = []
    servicer = _HeldExtracts(release)
    gateway = build_server(
        services=[
            ServiceBinding(
                servicer,
                extract_pb2_grpc.add_ExtractServiceServicer_to_server,
                "pseudogate.v1.ExtractService",
            )
        ],
        access=_OrgFromMetadata(),
        audit=lambda event: events.append(event.to_json_dict()),
        limits=StreamLimits(max_extracts_per_org=2, max_extracts=3),
    )
    try:
        with grpc.insecure_channel(gateway.address) as channel:
            create = extract_pb2_grpc.ExtractServiceStub(channel).CreateExtract

            def extract(org: str) -> Any:
                request = extract_pb2.CreateExtractRequest(project="p1")
                return create(request, metadata=[("x-test-org", org)], timeout=60)

            def held(org: str) -> Any:
                call = extract(org)
                assert servicer.entered.acquire(timeout=10), "the extract did not start"
                return call

            def refusal(org: str) -> str:
                with pytest.raises(grpc.RpcError) as refused:
                    list(extract(org))
                assert refused.value.code() == C.RESOURCE_EXHAUSTED
                return str(refused.value.details())

            open_calls = [held("uni-bangor"), held("uni-bangor")]
            assert "'uni-bangor' already has 2 extracts open" in refusal("uni-bangor")
            open_calls.append(held("uni-cardiff"))
            assert "its limit of 3 extracts" in refusal("uni-cardiff")
            release.set()
            for call in open_calls:
                assert [r.manifest_json for r in call] == ["{}"]
            assert [r.manifest_json for r in extract("uni-cardiff")] == ["{}"]
    finally:
        gateway.stop(grace=None)
    statuses = [(e["organisation"], e["status"]) for e in events]
    assert statuses.count(("uni-bangor", "RESOURCE_EXHAUSTED")) == 1
    assert statuses.count(("uni-cardiff", "RESOURCE_EXHAUSTED")) == 1


def test_when_a_client_stops_taking_responses_then_its_stream_is_cancelled_and_its_slot_freed(
    start: Any,
) -> None:
    gateway = start(limits=StreamLimits(idle_timeout=1.0, max_streams_per_org=1))
    batch = ["943 476 5919"] * 10_000  # ~130 KB per response: flow control soon stops the server

    def requests(n: int) -> Iterator[tokenisation_pb2.TokeniseStreamRequest]:
        for i in range(n):
            yield tokenisation_pb2.TokeniseStreamRequest(
                domain="nhs_number", values=batch, batch_id=i
            )

    with grpc.insecure_channel(gateway.address) as channel:
        stub = tokenisation_pb2_grpc.TokenisationServiceStub(channel)
        stalled = stub.TokeniseStream(requests(500), timeout=60)
        assert next(stalled).batch_id == 0  # ...and then nothing more is read
        _answers_promptly(channel)

        def slot_is_free() -> bool:
            try:
                replies = list(stub.TokeniseStream(requests(1), timeout=10))
            except grpc.RpcError as exc:
                assert exc.code() == C.RESOURCE_EXHAUSTED
                return False
            return [r.batch_id for r in replies] == [0]

        _wait_until(slot_is_free, timeout=20)
        with pytest.raises(grpc.RpcError) as ended:
            for _ in stalled:
                pass
        assert ended.value.code() == C.CANCELLED


def test_when_a_reflection_stream_goes_quiet_then_it_is_closed_too(
    start: Any, release: threading.Event
) -> None:
    gateway = start(limits=StreamLimits(idle_timeout=0.5))
    with grpc.insecure_channel(gateway.address) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        ask = reflection_pb2.ServerReflectionRequest(list_services="")
        replies = stub.ServerReflectionInfo(_stalled(release, ask), timeout=30)
        assert next(replies).list_services_response.service  # it works...
        with pytest.raises(grpc.RpcError) as closed:
            next(replies)  # ...until it goes quiet
    assert closed.value.code() == C.DEADLINE_EXCEEDED
    assert closed.value.details().startswith("no message for 0.5 s")


def test_when_one_provider_holds_all_its_streams_then_another_provider_still_submits(
    tmp_path: Path, release: threading.Event
) -> None:
    pki = tmp_path / "pki"
    write_dev_certs(pki, [("gp-denbigh", Role.PROVIDER), ("gp-conwy", Role.PROVIDER)])
    gateway = start_gateway(
        GatewaySettings(
            port=0,
            data_dir=tmp_path / "data",
            policies=_policies(tmp_path),
            tls=TlsFiles(pki / "ca.pem", pki / "server.pem", pki / "server.key"),
            limits=StreamLimits(max_streams_per_org=2),
        )
    )

    def channel(org: str) -> grpc.Channel:
        creds = grpc.ssl_channel_credentials(
            root_certificates=(pki / "ca.pem").read_bytes(),
            private_key=(pki / f"{org}.key").read_bytes(),
            certificate_chain=(pki / f"{org}.pem").read_bytes(),
        )
        return grpc.secure_channel(f"localhost:{gateway.port}", creds)

    try:
        with channel("gp-denbigh") as denbigh, channel("gp-conwy") as conwy:
            stalled_submit = dataset_pb2_grpc.DatasetServiceStub(denbigh).SubmitDataset
            held = [
                stalled_submit.future(_stalled(release, _header("gp_a")), timeout=60)
                for _ in range(2)
            ]
            assert gateway.fair_share is not None
            _wait_until(lambda: gateway.fair_share.streams.held == 2)
            with pytest.raises(grpc.RpcError) as refused:
                stalled_submit(iter([_header("gp_a")]), timeout=20)
            assert refused.value.code() == C.RESOURCE_EXHAUSTED
            assert "'gp-denbigh' already has 2 streams open" in refused.value.details()
            assert not any(call.done() for call in held)
            submit = dataset_pb2_grpc.DatasetServiceStub(conwy).SubmitDataset
            data = dataset_pb2.SubmitDatasetRequest(arrow_ipc=_gp_payload())
            done = submit(iter([_header("gp_b", organisation=""), data]), timeout=20)
            assert (done.dataset, done.version) == ("gp_b", 1)
            release.set()
            assert [_code(call)[0] for call in held] == [C.INVALID_ARGUMENT] * 2
    finally:
        gateway.stop(grace=None)


def _serve_settings(*flags: str) -> GatewaySettings:
    args = build_parser().parse_args(
        ["serve", "--insecure", "--data-dir", "d", "--policies", "p", *flags]
    )
    return settings_from_args(args)


def test_when_serve_is_given_limit_flags_then_the_gateway_settings_carry_them() -> None:
    assert _serve_settings().limits == StreamLimits()
    assert _serve_settings().storage_quota_per_org is None
    settings = _serve_settings(
        "--idle-stream-timeout", "2.5", "--max-streams-per-org", "8",
        "--max-extracts-per-org", "1", "--max-extracts", "3", "--storage-quota-per-org", "10G",
    )  # fmt: skip
    assert settings.limits == StreamLimits(
        idle_timeout=2.5, max_streams_per_org=8, max_extracts_per_org=1, max_extracts=3
    )
    assert settings.storage_quota_per_org == 10 * 1024**3
    assert _serve_settings("--storage-quota-per-org", "1500").storage_quota_per_org == 1500
    assert _serve_settings("--storage-quota-per-org", "1.5k").storage_quota_per_org == 1536


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--idle-stream-timeout", "0"], "idle stream timeout must be a positive"),
        (["--idle-stream-timeout", "inf"], "idle stream timeout must be a positive"),
        (["--max-streams-per-org", "0"], "max-streams-per-org must be a positive integer"),
        (["--max-extracts", "-1"], "max-extracts must be a positive integer"),
    ],
)
def test_when_a_limit_is_out_of_range_then_serve_exits_2_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    code = main(["serve", "--insecure", "--port", "0", "--data-dir", str(tmp_path / "d"),
                 "--policies", str(_policies(tmp_path)), *flags])  # fmt: skip
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "d").exists(), "refused before anything was created"


@pytest.mark.parametrize("size", ["0", "lots", "12X", "inf"])
def test_when_a_storage_quota_is_not_a_size_then_serve_refuses_it(size: str) -> None:
    with pytest.raises(SystemExit) as refused:
        _serve_settings("--storage-quota-per-org", size)
    assert refused.value.code == 2
