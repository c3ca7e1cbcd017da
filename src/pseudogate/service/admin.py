"""AdminService: operators register projects and opt-outs, read linkage counts and key metadata."""

from __future__ import annotations

import datetime as dt
import json

import grpc

from pseudogate.core.errors import InvalidInput
from pseudogate.core.keyring import Keyring
from pseudogate.core.names import DEFAULT_DOMAIN
from pseudogate.gateway import Store
from pseudogate.service.calls import current_call
from pseudogate.service.changes import apply_change
from pseudogate.v1 import admin_pb2, admin_pb2_grpc

__all__ = ["AdminServicer"]


class AdminServicer(admin_pb2_grpc.AdminServiceServicer):
    def __init__(self, *, store: Store, keyring: Keyring) -> None:
        self._store = store
        self._keyring = keyring

    def CreateProject(
        self, request: admin_pb2.CreateProjectRequest, context: grpc.ServicerContext
    ) -> admin_pb2.CreateProjectResponse:
        call = current_call()
        call.project = request.project
        try:
            expires = dt.date.fromisoformat(request.expires)
        except ValueError:
            raise InvalidInput("expires must be a date YYYY-MM-DD") from None
        prepared = self._store.prepare_project(
            project_id=request.project,
            researcher=request.researcher,
            datasets=list(request.datasets),
            policy_text=request.policy_yaml,
            policy_files=dict(request.policy_files),
            expires=expires,
            domain=request.domain or DEFAULT_DOMAIN,
            linkage=request.linkage,
            linkage_threshold=request.linkage_threshold or None,
            title=request.title,
            purpose=request.purpose,
            legal_basis=request.legal_basis,
            public_benefit=request.public_benefit,
        )
        row = apply_change(prepared)  # audited before it is stored
        return admin_pb2.CreateProjectResponse(
            project=row.id,
            policy_fingerprint=row.policy_fingerprint,
            project_key_id=row.project_key_id,
            linkage=row.linkage,
            linkage_threshold=row.linkage_threshold or 0.0,
        )

    def ImportOptOuts(
        self, request: admin_pb2.ImportOptOutsRequest, context: grpc.ServicerContext
    ) -> admin_pb2.ImportOptOutsResponse:
        prepared = self._store.prepare_optouts(
            list(request.nhs_numbers),
            domain=request.domain or DEFAULT_DOMAIN,
            allow_empty=request.allow_empty,
        )
        snapshot = apply_change(prepared)  # audited before it is stored
        previous = prepared.previous
        return admin_pb2.ImportOptOutsResponse(
            snapshot=snapshot.id,
            count=snapshot.count,
            previous_snapshot=previous.id if previous else 0,
            previous_count=previous.count if previous else 0,
        )

    def LinkageReport(
        self, request: admin_pb2.LinkageReportRequest, context: grpc.ServicerContext
    ) -> admin_pb2.LinkageReportResponse:
        report = self._store.linkage_report()
        current_call().counts["datasets"] = len(report["datasets"])
        return admin_pb2.LinkageReportResponse(report_json=json.dumps(report, sort_keys=True))

    def ListKeys(
        self, request: admin_pb2.ListKeysRequest, context: grpc.ServicerContext
    ) -> admin_pb2.ListKeysResponse:
        keys = [
            admin_pb2.KeyMetadata(
                id=k.id,
                purpose=k.purpose.value,
                status=k.status.value,
                created=k.created,
                fingerprint=k.fingerprint,
            )
            for k in self._keyring.infos()
        ]
        current_call().counts["keys"] = len(keys)
        return admin_pb2.ListKeysResponse(keys=keys)
