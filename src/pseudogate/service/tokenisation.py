"""TokenisationService: convert request -> core Tokenisation -> response."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import grpc

from pseudogate.core.tokenisation import Tokenisation, TokenisationResult
from pseudogate.service.calls import current_call
from pseudogate.v1 import common_pb2, tokenisation_pb2, tokenisation_pb2_grpc

__all__ = ["TokenisationServicer"]


def _errors(result: TokenisationResult) -> list[common_pb2.RowError]:
    return [common_pb2.RowError(index=i, reason=r) for i, r in result.errors]


class TokenisationServicer(tokenisation_pb2_grpc.TokenisationServiceServicer):
    def __init__(self, tokenisation: Tokenisation) -> None:
        self._core = tokenisation

    def _tokenise(self, domain: str, values: Iterable[str]) -> TokenisationResult:
        result = self._core.tokenise(domain, list(values))
        call = current_call()
        call.key_ids["linkage"] = result.key_id
        call.counts["values"] = call.counts.get("values", 0) + len(result.tokens)
        call.counts["invalid"] = call.counts.get("invalid", 0) + len(result.errors)
        return result

    def Tokenise(
        self, request: tokenisation_pb2.TokeniseRequest, context: grpc.ServicerContext
    ) -> tokenisation_pb2.TokeniseResponse:
        result = self._tokenise(request.domain, request.values)
        return tokenisation_pb2.TokeniseResponse(
            tokens=result.tokens, errors=_errors(result), key_id=result.key_id
        )

    def TokeniseStream(
        self,
        request_iterator: Iterator[tokenisation_pb2.TokeniseStreamRequest],
        context: grpc.ServicerContext,
    ) -> Iterator[tokenisation_pb2.TokeniseStreamResponse]:
        # One response per request, computed before the next request is read: with gRPC's
        # HTTP/2 flow control this bounds what the server buffers, however fast the client.
        # Each exchange is audited before its response is sent.
        call = current_call()
        for request in request_iterator:
            result = self._tokenise(request.domain, request.values)
            call.exchange_done()
            yield tokenisation_pb2.TokeniseStreamResponse(
                tokens=result.tokens,
                errors=_errors(result),
                key_id=result.key_id,
                batch_id=request.batch_id,
            )
