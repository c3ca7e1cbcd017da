"""ExtractService: a researcher's project extract, computed whole, audited, then streamed."""

from __future__ import annotations

from collections.abc import Iterator

import grpc

from pseudogate.core.clock import Clock, today_utc, utc_now
from pseudogate.gateway import Store
from pseudogate.service.calls import current_call
from pseudogate.service.changes import apply_change
from pseudogate.service.datasets import INSECURE_ROLE
from pseudogate.v1 import extract_pb2, extract_pb2_grpc

__all__ = ["ROWS_PER_MESSAGE", "ExtractServicer"]

ROWS_PER_MESSAGE = 50_000


class ExtractServicer(extract_pb2_grpc.ExtractServiceServicer):
    def __init__(self, store: Store, *, clock: Clock = utc_now) -> None:
        """``clock`` says which UTC day it is for the project's expiry (the gateway's clock)."""
        self._store = store
        self._clock = clock

    def CreateExtract(
        self, request: extract_pb2.CreateExtractRequest, context: grpc.ServicerContext
    ) -> Iterator[extract_pb2.CreateExtractResponse]:
        call = current_call()
        call.project = request.project
        organisation = None if call.role == INSECURE_ROLE else call.organisation
        release = self._store.prepare_extract(
            request.project, organisation=organisation, today=today_utc(self._clock)
        )
        extract = apply_change(release)  # audited before the first row leaves the gateway
        for payload in extract.iter_arrow_ipc(rows_per_message=ROWS_PER_MESSAGE):
            yield extract_pb2.CreateExtractResponse(arrow_ipc=payload)
        yield extract_pb2.CreateExtractResponse(manifest_json=extract.manifest_json())
