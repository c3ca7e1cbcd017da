"""ExtractService: a researcher's project extract, computed whole, audited, then streamed."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator

import grpc

from pseudogate.gateway import Store
from pseudogate.service.calls import current_call
from pseudogate.service.changes import apply_change
from pseudogate.service.datasets import INSECURE_ROLE
from pseudogate.v1 import extract_pb2, extract_pb2_grpc

__all__ = ["ROWS_PER_MESSAGE", "ExtractServicer"]

ROWS_PER_MESSAGE = 50_000


def _today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


class ExtractServicer(extract_pb2_grpc.ExtractServiceServicer):
    def __init__(self, store: Store, *, today: Callable[[], dt.date] | None = None) -> None:
        self._store = store
        self._today = today or _today

    def CreateExtract(
        self, request: extract_pb2.CreateExtractRequest, context: grpc.ServicerContext
    ) -> Iterator[extract_pb2.CreateExtractResponse]:
        call = current_call()
        call.project = request.project
        organisation = None if call.role == INSECURE_ROLE else call.organisation
        release = self._store.prepare_extract(
            request.project, organisation=organisation, today=self._today()
        )
        extract = apply_change(release)  # audited before the first row leaves the gateway
        for payload in extract.iter_arrow_ipc(rows_per_message=ROWS_PER_MESSAGE):
            yield extract_pb2.CreateExtractResponse(arrow_ipc=payload)
        yield extract_pb2.CreateExtractResponse(manifest_json=extract.manifest_json())
