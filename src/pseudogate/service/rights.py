"""RightsService: subject access and re-identification requests, each needing two people.

Thin: each method converts the request, calls :mod:`pseudogate.gateway.rights` and hands every
step (request, approval, refusal, expiry, delivery) to :func:`apply_change`, so its audit
event is written before it is committed or anything is returned. The caller's organisation
and role come from its mTLS identity (the interceptor), never from the request.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable

import grpc

from pseudogate.audit.events import AuditEvent
from pseudogate.core.errors import FailedPrecondition
from pseudogate.core.rights import Requester, check_request_id
from pseudogate.gateway.rights import RequestView, Rights
from pseudogate.service.calls import current_call
from pseudogate.service.changes import apply_change, apply_own_change
from pseudogate.v1 import rights_pb2, rights_pb2_grpc

__all__ = ["SWEEP_METHOD", "ExpirySweep", "RightsServicer"]

log = logging.getLogger("pseudogate.rights")

#: The ``method`` of an expiry recorded by the sweep: the gateway's own step, no caller
#: (``organisation`` and ``role`` null). Not an RPC anyone can call.
SWEEP_METHOD = "/pseudogate.v1.RightsService/ExpireRequests"


class ExpirySweep:
    """Records the expiry of every pending request past its time, each its own audited state
    change (prepared, its event appended to the log, then committed: THE rule), so that the
    register and the log show expiries without anyone touching each request.

    The gateway runs it at start-up (after reconciliation, before serving), before every
    RightsService call and before the register is read. Sweeps run one at a time; an expiry
    that a call recorded meanwhile is skipped. Raises what the audit log raises (Unavailable):
    nothing is then committed.
    """

    def __init__(self, rights: Rights, append: Callable[[AuditEvent], object]) -> None:
        self._rights = rights
        self._append = append
        self._lock = threading.Lock()

    def __call__(self) -> int:
        """Record every due expiry; returns how many were recorded."""
        recorded = 0
        with self._lock:
            for rid in self._rights.due_expiries():
                prepared = self._rights.prepare_expiry(rid)
                if prepared is None:
                    continue
                try:
                    apply_own_change(prepared, method=SWEEP_METHOD, append=self._append)
                except FailedPrecondition:
                    continue  # a call recorded it between the listing and the commit
                recorded += 1
        if recorded:
            log.info("rights: recorded the expiry of %d request(s)", recorded)
        return recorded


def _no_sweep() -> int:
    return 0


def _caller() -> Requester:
    call = current_call()
    return Requester(call.organisation, call.role)


def _message(view: RequestView) -> rights_pb2.RightsRequest:
    row = view.row
    return rights_pb2.RightsRequest(
        id=row.id,
        kind=row.kind,
        status=view.status.value,
        reason=row.reason,
        requester_organisation=row.organisation,
        requester_role=row.role,
        project=row.project or "",
        created_at=row.created_at,
        expires_at=row.expires_at,
        approvals=view.approvals,
        refusal_reason=row.refusal_reason or "",
        tokens=view.tokens,
    )


class RightsServicer(rights_pb2_grpc.RightsServiceServicer):
    def __init__(self, rights: Rights, *, sweep: Callable[[], int] = _no_sweep) -> None:
        self._rights = rights
        self._sweep = sweep

    def _name(self, request_id: str) -> str:
        rid = check_request_id(request_id)
        current_call().details["request"] = rid
        return rid

    def _expire_if_due(self, request_id: str) -> None:
        """Record the expiry of a pending request past its time (its own audited change),
        then refuse the call. Any call acting on the request records it (the expiry is a fact,
        whoever finds it); an unknown id is left to the call's own checks."""
        expiry = self._rights.prepare_expiry(request_id)
        if expiry is None:
            return
        apply_change(expiry)
        call = current_call()
        call.details = {"request": request_id, "request_status": "expired"}
        raise FailedPrecondition("the request expired before it was approved")

    def RequestSubjectAccess(
        self, request: rights_pb2.RequestSubjectAccessRequest, context: grpc.ServicerContext
    ) -> rights_pb2.RequestSubjectAccessResponse:
        self._sweep()  # expiries due are recorded first, each with its own event
        prepared = self._rights.prepare_subject_access(
            nhs_number=request.nhs_number, reason=request.reason, requester=_caller()
        )
        view = apply_change(prepared)  # audited before it is stored
        return rights_pb2.RequestSubjectAccessResponse(request=_message(view))

    def RequestReidentification(
        self, request: rights_pb2.RequestReidentificationRequest, context: grpc.ServicerContext
    ) -> rights_pb2.RequestReidentificationResponse:
        self._sweep()  # expiries due are recorded first, each with its own event
        current_call().project = request.project
        current_call().counts["tokens"] = len(request.tokens)
        prepared = self._rights.prepare_reidentification(
            project=request.project, tokens=list(request.tokens), reason=request.reason,
            requester=_caller(),
        )
        view = apply_change(prepared)
        return rights_pb2.RequestReidentificationResponse(request=_message(view))

    def ApproveRequest(
        self, request: rights_pb2.ApproveRequestRequest, context: grpc.ServicerContext
    ) -> rights_pb2.ApproveRequestResponse:
        self._sweep()  # expiries due are recorded first, each with its own event
        rid = self._name(request.request)
        approver = _caller()
        self._expire_if_due(rid)
        view = self._rights.check_decision(rid, approver=approver)  # the two-person rule
        if self._rights.already_approved_by(view, approver):
            current_call().counts["approvals"] = view.approvals  # counted once: no change
            return rights_pb2.ApproveRequestResponse(request=_message(view))
        view = apply_change(self._rights.prepare_approval(rid, approver=approver))
        return rights_pb2.ApproveRequestResponse(request=_message(view))

    def RefuseRequest(
        self, request: rights_pb2.RefuseRequestRequest, context: grpc.ServicerContext
    ) -> rights_pb2.RefuseRequestResponse:
        self._sweep()  # expiries due are recorded first, each with its own event
        rid = self._name(request.request)
        self._expire_if_due(rid)
        prepared = self._rights.prepare_refusal(rid, approver=_caller(), reason=request.reason)
        view = apply_change(prepared)
        return rights_pb2.RefuseRequestResponse(request=_message(view))

    def GetRequest(
        self, request: rights_pb2.GetRequestRequest, context: grpc.ServicerContext
    ) -> rights_pb2.GetRequestResponse:
        self._sweep()  # expiries due are recorded first, each with its own event
        rid = self._name(request.request)
        view = self._rights.view_for(rid, caller=_caller())
        return rights_pb2.GetRequestResponse(request=_message(view))

    def ListRequests(
        self, request: rights_pb2.ListRequestsRequest, context: grpc.ServicerContext
    ) -> rights_pb2.ListRequestsResponse:
        self._sweep()  # expiries due are recorded first, each with its own event
        views = self._rights.list_for(caller=_caller(), status=request.status)
        current_call().counts["requests"] = len(views)
        return rights_pb2.ListRequestsResponse(requests=[_message(v) for v in views])

    def GetSubjectAccessReport(
        self, request: rights_pb2.GetSubjectAccessReportRequest, context: grpc.ServicerContext
    ) -> rights_pb2.GetSubjectAccessReportResponse:
        self._sweep()  # expiries due are recorded first, each with its own event
        rid = self._name(request.request)
        self._expire_if_due(rid)
        prepared = self._rights.prepare_subject_access_report(rid, caller=_caller())
        report = apply_change(prepared)  # audited, marked delivered, then returned
        return rights_pb2.GetSubjectAccessReportResponse(
            report_json=json.dumps(report, sort_keys=True)
        )

    def FetchReidentification(
        self, request: rights_pb2.FetchReidentificationRequest, context: grpc.ServicerContext
    ) -> rights_pb2.FetchReidentificationResponse:
        self._sweep()  # expiries due are recorded first, each with its own event
        rid = self._name(request.request)
        self._expire_if_due(rid)
        prepared = self._rights.prepare_reidentified(rid, caller=_caller())
        reason, records = apply_change(prepared)
        return rights_pb2.FetchReidentificationResponse(
            request=rid,
            reason=reason,
            records=[
                rights_pb2.ReidentifiedRecord(
                    dataset=r.dataset, version=r.version, row=r.row, linkage_token=r.linkage_token
                )
                for r in records
            ],
        )
