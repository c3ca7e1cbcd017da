"""DatasetService: providers stream a dataset; it is stored whole or not at all."""

from __future__ import annotations

from collections.abc import Iterator

import grpc

from pseudogate.core.errors import InvalidInput
from pseudogate.gateway import Store
from pseudogate.service.calls import current_call
from pseudogate.service.changes import apply_change
from pseudogate.v1 import dataset_pb2, dataset_pb2_grpc

__all__ = ["INSECURE_ROLE", "DatasetServicer"]

INSECURE_ROLE = "insecure"


class DatasetServicer(dataset_pb2_grpc.DatasetServiceServicer):
    def __init__(self, store: Store) -> None:
        self._store = store

    def SubmitDataset(
        self,
        request_iterator: Iterator[dataset_pb2.SubmitDatasetRequest],
        context: grpc.ServicerContext,
    ) -> dataset_pb2.SubmitDatasetResponse:
        call = current_call()
        first = next(request_iterator, None)
        if first is None or first.WhichOneof("payload") != "header":
            raise InvalidInput("the first message of a submission must be a SubmissionHeader")
        header = first.header
        call.dataset = header.dataset
        # With mTLS the organisation is the certificate's; without, the header names it.
        organisation = call.organisation
        if call.role == INSECURE_ROLE:
            if not header.organisation:
                raise InvalidInput("without mTLS the SubmissionHeader must name the organisation")
            organisation = header.organisation
        submission = self._store.begin_submission(
            dataset=header.dataset, policy_name=header.policy, organisation=organisation
        )
        try:
            for n, message in enumerate(request_iterator, start=2):
                if message.WhichOneof("payload") != "arrow_ipc":
                    raise InvalidInput(f"message {n}: expected Arrow IPC bytes after the header")
                submission.add_arrow_ipc(message.arrow_ipc)
            submission.prepare()
            result = apply_change(submission)  # audited, with its version, before it is stored
        except BaseException:
            submission.abort()
            raise
        return dataset_pb2.SubmitDatasetResponse(
            dataset=result.dataset,
            version=result.version,
            rows=result.rows,
            policy_fingerprint=result.policy_fingerprint,
            key_id=result.key_id,
        )
