"""ExtractService: a researcher's project extract, computed whole, audited, then streamed."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator

import grpc

from pseudogate.service.calls import current_call
from pseudogate.service.datasets import INSECURE_ROLE
from pseudogate.store import Store
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
        extract = self._store.build_extract(
            request.project, organisation=organisation, today=self._today()
        )
        manifest = extract.manifest
        call.policy_fingerprint = manifest["policy_fingerprint"]
        call.key_ids.update(manifest["key_ids"])
        call.counts["rows"] = manifest["rows"]
        call.counts["suppressed"] = manifest["suppressed"]
        call.counts["datasets"] = len(manifest["datasets"])
        call.commit_point()  # audited before the first row leaves the gateway
        for payload in extract.iter_arrow_ipc(rows_per_message=ROWS_PER_MESSAGE):
            yield extract_pb2.CreateExtractResponse(arrow_ipc=payload)
        yield extract_pb2.CreateExtractResponse(
            manifest_json=json.dumps(manifest, ensure_ascii=False, separators=(",", ":"))
        )
