"""The one place where domain errors become gRPC statuses (with rich details)."""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from pseudogate.core.errors import ErrorCode, PseudogateError, RowErrors

__all__ = ["MAX_DETAIL_VIOLATIONS", "grpc_code", "internal_status", "status_for"]

_CODES: dict[ErrorCode, grpc.StatusCode] = {
    ErrorCode.INVALID_ARGUMENT: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorCode.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    ErrorCode.ALREADY_EXISTS: grpc.StatusCode.ALREADY_EXISTS,
    ErrorCode.PERMISSION_DENIED: grpc.StatusCode.PERMISSION_DENIED,
    ErrorCode.FAILED_PRECONDITION: grpc.StatusCode.FAILED_PRECONDITION,
    ErrorCode.RESOURCE_EXHAUSTED: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ErrorCode.DEADLINE_EXCEEDED: grpc.StatusCode.DEADLINE_EXCEEDED,
    ErrorCode.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    ErrorCode.INTERNAL: grpc.StatusCode.INTERNAL,
}
MAX_DETAIL_VIOLATIONS = 1_000


def grpc_code(exc: PseudogateError) -> grpc.StatusCode:
    return _CODES.get(exc.code, grpc.StatusCode.INTERNAL)


def status_for(exc: PseudogateError) -> grpc.Status:
    """A status with the exception's message; row errors travel as google.rpc.BadRequest."""
    code = grpc_code(exc)
    details: list[any_pb2.Any] = []
    if isinstance(exc, RowErrors):
        bad = error_details_pb2.BadRequest()
        for e in exc.errors[:MAX_DETAIL_VIOLATIONS]:
            v = bad.field_violations.add()
            v.field = f"row {e.row}" + (f" column {e.column}" if e.column else "")
            v.description = e.reason
        packed = any_pb2.Any()
        packed.Pack(bad)
        details.append(packed)
    return rpc_status.to_status(
        status_pb2.Status(code=code.value[0], message=str(exc), details=details)
    )


def internal_status() -> grpc.Status:
    """For unexpected failures: says nothing about the input (it might hold identifiers)."""
    return rpc_status.to_status(
        status_pb2.Status(code=code_pb2.INTERNAL, message="internal error; see the gateway log")
    )
