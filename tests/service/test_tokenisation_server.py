"""TokenisationService through a real server on a loopback port."""

from __future__ import annotations

import logging

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status

from pseudogate.core.keyring import EXAMPLE_KEYRING, Keyring
from pseudogate.core.normalise import normalise
from pseudogate.core.tokenisation import MAX_BATCH_VALUES
from pseudogate.v1 import tokenisation_pb2 as pb
from pseudogate.v1 import tokenisation_pb2_grpc as pb_grpc

VALID = ["943 476 5919", "9434765919", "943-476-5919", "401 023 2137"]
INVALID = ["943 476 5910", "12345", ""]


def stub(channel: grpc.Channel) -> pb_grpc.TokenisationServiceStub:
    return pb_grpc.TokenisationServiceStub(channel)


def expected_token(domain: str, kind: str, value: str) -> str:
    tokeniser = Keyring.load(EXAMPLE_KEYRING).linkage_tokeniser(domain)
    return tokeniser.token(normalise(kind, value))


def test_when_values_are_valid_then_tokens_match_the_core_construction(channel: grpc.Channel) -> None:
    reply = stub(channel).Tokenise(pb.TokeniseRequest(domain="nhs_number", values=VALID))
    assert list(reply.errors) == []
    assert reply.key_id == "example-link"
    assert list(reply.tokens) == [expected_token("nhs_number", "nhs_number", v) for v in VALID]
    # Spacing variants of one number give one token.
    assert len(set(reply.tokens[:3])) == 1


def test_when_some_values_are_invalid_then_they_get_empty_tokens_and_reasons(
    channel: grpc.Channel,
) -> None:
    values = [VALID[0], *INVALID, VALID[3]]
    reply = stub(channel).Tokenise(pb.TokeniseRequest(domain="nhs_number", values=values))
    assert [t == "" for t in reply.tokens] == [False, True, True, True, False]
    assert [(e.index, e.reason) for e in reply.errors] == [
        (1, "invalid_check_digit"),
        (2, "bad_format"),
        (3, "empty"),
    ]


def test_when_domain_is_unknown_then_invalid_argument(channel: grpc.Channel) -> None:
    with pytest.raises(grpc.RpcError) as err:
        stub(channel).Tokenise(pb.TokeniseRequest(domain="shoe_size", values=["1"]))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "unknown domain 'shoe_size'" in err.value.details()


def test_when_batch_exceeds_the_limit_then_resource_exhausted(channel: grpc.Channel) -> None:
    values = ["9434765919"] * (MAX_BATCH_VALUES + 1)
    with pytest.raises(grpc.RpcError) as err:
        stub(channel).Tokenise(pb.TokeniseRequest(domain="nhs_number", values=values))
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "exceeds the limit" in err.value.details()


def test_when_message_exceeds_the_size_limit_then_resource_exhausted(channel: grpc.Channel) -> None:
    huge = ["x" * (1 << 20)] * 70  # 70 MiB > the 64 MiB message limit
    with pytest.raises(grpc.RpcError) as err:
        stub(channel).Tokenise(pb.TokeniseRequest(domain="text", values=huge))
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_when_streaming_batches_then_each_reply_matches_its_batch_in_order(
    channel: grpc.Channel,
) -> None:
    batches = [
        pb.TokeniseStreamRequest(domain="postcode", values=["ll15 1aa", "LL151AA"], batch_id=1),
        pb.TokeniseStreamRequest(domain="email", values=[" A@B.org ", "nope"], batch_id=2),
        pb.TokeniseStreamRequest(domain="name", values=["Siân O'Brien"], batch_id=3),
    ]
    replies = list(stub(channel).TokeniseStream(iter(batches)))
    assert [r.batch_id for r in replies] == [1, 2, 3]
    assert replies[0].tokens[0] == replies[0].tokens[1] == expected_token("postcode", "postcode", "LL15 1AA")
    assert replies[1].tokens[0] == expected_token("email", "email", "a@b.org")
    assert [(e.index, e.reason) for e in replies[1].errors] == [(1, "bad_format")]
    assert replies[2].tokens[0] == expected_token("name", "name", "sian o brien")


def test_when_a_stream_batch_is_bad_then_the_stream_fails_with_a_clear_status(
    channel: grpc.Channel,
) -> None:
    batches = [
        pb.TokeniseStreamRequest(domain="nhs_number", values=["9434765919"], batch_id=1),
        pb.TokeniseStreamRequest(domain="nope", values=["1"], batch_id=2),
    ]
    replies = stub(channel).TokeniseStream(iter(batches))
    first = next(replies)
    assert first.batch_id == 1
    with pytest.raises(grpc.RpcError) as err:
        next(replies)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_when_health_is_checked_then_every_service_is_serving(channel: grpc.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "pseudogate.v1.TokenisationService"):
        reply = health.Check(health_pb2.HealthCheckRequest(service=service))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_when_reflection_is_asked_then_it_lists_and_describes_the_service(
    channel: grpc.Channel,
) -> None:
    refl = reflection_pb2_grpc.ServerReflectionStub(channel)
    replies = list(
        refl.ServerReflectionInfo(
            iter(
                [
                    reflection_pb2.ServerReflectionRequest(list_services=""),
                    reflection_pb2.ServerReflectionRequest(
                        file_containing_symbol="pseudogate.v1.TokenisationService"
                    ),
                ]
            )
        )
    )
    names = {s.name for s in replies[0].list_services_response.service}
    assert "pseudogate.v1.TokenisationService" in names
    assert replies[1].file_descriptor_response.file_descriptor_proto


def test_when_rpcs_run_then_logs_hold_no_raw_identifier(
    channel: grpc.Channel, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret_values = ["943 476 5910", "Siân O'Brien", "9434765919"]
    s = stub(channel)
    first = s.Tokenise(pb.TokeniseRequest(domain="nhs_number", values=secret_values[::2]))
    second = s.Tokenise(pb.TokeniseRequest(domain="name", values=[secret_values[1]]))
    with pytest.raises(grpc.RpcError):
        s.Tokenise(pb.TokeniseRequest(domain="bogus", values=secret_values))
    text = "\n".join(r.getMessage() for r in caplog.records)
    tokens = [t for t in [*first.tokens, *second.tokens] if t]
    assert len(tokens) == 2
    for value in secret_values + ["9434765910", "sian o brien"] + tokens:
        assert value not in text


def test_when_rows_are_refused_then_status_details_name_rows_not_values() -> None:
    # Rich status details are built in one place; check their shape without a server.
    from pseudogate.core.errors import RowError, RowErrors
    from pseudogate.service.errors import status_for

    status = status_for(RowErrors([RowError(3, "bad_format", "nhs_number")]))
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    decoded = rpc_status.status_pb2.Status.FromString(status.trailing_metadata[0][1])
    bad = error_details_pb2.BadRequest()
    assert decoded.details[0].Unpack(bad)
    assert bad.field_violations[0].field == "row 3 column nhs_number"
    assert bad.field_violations[0].description == "bad_format"
