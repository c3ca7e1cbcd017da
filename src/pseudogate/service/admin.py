"""AdminService: operators register projects and opt-outs, read linkage counts and key metadata."""

from __future__ import annotations

import datetime as dt
import json

import grpc

from pseudogate.errors import InvalidInput
from pseudogate.keyring import Keyring
from pseudogate.service.calls import current_call
from pseudogate.store import Store
from pseudogate.v1 import admin_pb2, admin_pb2_grpc

__all__ = ["DEFAULT_LINKAGE_DOMAIN", "AdminServicer"]

DEFAULT_LINKAGE_DOMAIN = "person"


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
        record = self._store.create_project(
            project_id=request.project,
            researcher=request.researcher,
            datasets=list(request.datasets),
            policy_text=request.policy_yaml,
            policy_files=dict(request.policy_files),
            expires=expires,
            domain=request.domain or DEFAULT_LINKAGE_DOMAIN,
        )
        call.policy_fingerprint = record.policy_fingerprint
        call.key_ids["project"] = record.project_key_id
        call.counts["datasets"] = len(request.datasets)
        return admin_pb2.CreateProjectResponse(
            project=request.project,
            policy_fingerprint=record.policy_fingerprint,
            project_key_id=record.project_key_id,
        )

    def ImportOptOuts(
        self, request: admin_pb2.ImportOptOutsRequest, context: grpc.ServicerContext
    ) -> admin_pb2.ImportOptOutsResponse:
        call = current_call()
        domain = request.domain or DEFAULT_LINKAGE_DOMAIN
        previous = self._store.latest_optout_snapshot(domain)
        snapshot = self._store.import_optouts(
            list(request.nhs_numbers), domain=domain, allow_empty=request.allow_empty
        )
        call.counts["snapshot"] = snapshot.id
        call.counts["people"] = snapshot.count
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
