"""One server interceptor: identify the caller, authorise, audit, and map errors.

Every RPC except health checks and reflection passes through :class:`GatewayInterceptor`:

1. the caller's identity comes from the mTLS client certificate (or is ``insecure``);
2. the role table decides (refusals are audited too);
3. the servicer runs; it fills :class:`~pseudogate.service.calls.Call` with counts, dataset,
   project, key ids. A state change goes through
   :func:`~pseudogate.service.changes.apply_change`, which writes the event before committing
   or streaming anything;
4. the audit event is written *before* a unary result is returned. If it cannot be written
   the call fails ``UNAVAILABLE``: no access goes unaudited.

Domain errors become statuses in one place (:mod:`pseudogate.service.errors`); unexpected
exceptions are logged by type only (their text might contain input) and become ``INTERNAL``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

import grpc

from pseudogate.audit.events import AuditEvent
from pseudogate.core.errors import (
    InvalidInput,
    PseudogateError,
    RowError,
    RowErrors,
    StorageFull,
    Unavailable,
    is_storage_full,
    storage_full,
)
from pseudogate.service.calls import Call, reset_current, set_current
from pseudogate.service.errors import grpc_code, internal_status, status_for
from pseudogate.service.limits import FairShare
from pseudogate.service.wire import invalid_utf8_fields

__all__ = ["AccessControl", "AuditSink", "GatewayInterceptor", "Identity"]

log = logging.getLogger("pseudogate.rpc")


class Identity(Protocol):
    organisation: str

    @property
    def role_name(self) -> str: ...


class AccessControl(Protocol):
    def identify(self, context: grpc.ServicerContext) -> Any: ...

    def authorise(self, identity: Any, method: str) -> None: ...

    def is_unaudited(self, method: str) -> bool: ...

    def describe(self, identity: Any) -> tuple[str, str, frozenset[str]]:
        """(organisation, role as audited, roles held)."""
        ...


#: Where the interceptor writes each call's event (``AuditLog.append`` in the gateway).
AuditSink = Callable[[AuditEvent], None]


class AuditUnavailable(Unavailable):
    """The audit event could not be written: the call fails closed."""


class AuditStorageFull(AuditUnavailable):
    """The audit event could not be written for lack of space: RESOURCE_EXHAUSTED."""

    code = StorageFull.code


if TYPE_CHECKING:  # generic only in grpc-stubs: not subscriptable at run time
    _ServerInterceptor = grpc.ServerInterceptor[Any, Any]
else:
    _ServerInterceptor = grpc.ServerInterceptor


class GatewayInterceptor(_ServerInterceptor):
    def __init__(
        self, *, access: AccessControl, audit: AuditSink | None, fair_share: FairShare | None = None
    ) -> None:
        self._access = access
        self._audit = audit
        self._fair = fair_share

    # -- grpc hook ------------------------------------------------------------------------

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler[Any, Any] | None],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = continuation(details)
        if handler is None:
            return handler
        if self._access.is_unaudited(details.method):
            return handler if self._fair is None else self._fair.guard_unaudited(handler)
        method = details.method
        if self._fair is not None:
            handler = _fair_shared(handler, method, self._fair)
        deserialise = _lenient(handler.request_deserializer)
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                self._wrap_unary(handler.unary_unary, method, stream_in=False),
                request_deserializer=deserialise,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                self._wrap_unary(handler.stream_unary, method, stream_in=True),
                request_deserializer=deserialise,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                self._wrap_stream(handler.unary_stream, method, stream_in=False),
                request_deserializer=deserialise,
                response_serializer=handler.response_serializer,
            )
        assert handler.stream_stream is not None  # a handler has exactly one behaviour
        return grpc.stream_stream_rpc_method_handler(
            self._wrap_stream(handler.stream_stream, method, stream_in=True),
            request_deserializer=deserialise,
            response_serializer=handler.response_serializer,
        )

    # -- wrappers -------------------------------------------------------------------------

    def _start(self, call: Call, context: grpc.ServicerContext) -> None:
        """Identify and authorise the caller, filling ``call`` as far as it got."""
        call.record = lambda status: self._record(call, status)
        call.record_exchange = lambda status: self._write(call, status)
        identity = self._access.identify(context)  # PermissionDenied for a bad identity
        call.organisation, call.role, call.roles = self._access.describe(identity)
        self._access.authorise(identity, call.method)

    def _wrap_unary(
        self, inner: Callable[..., Any], method: str, *, stream_in: bool
    ) -> Callable[..., Any]:
        def behaviour(request: Any, context: grpc.ServicerContext) -> Any:
            call = Call(method=method)
            token = set_current(call)
            try:
                self._start(call, context)
                result = inner(_checked(request, stream_in), context)
                if not call.audited:
                    self._record(call, "OK")
                return result
            except BaseException as exc:
                self._fail(call, exc, context)
                raise  # unreachable: _fail aborts
            finally:
                reset_current(token)

        return behaviour

    def _wrap_stream(
        self, inner: Callable[..., Any], method: str, *, stream_in: bool
    ) -> Callable[..., Any]:
        def behaviour(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            call = Call(method=method)
            token = set_current(call)
            try:
                self._start(call, context)
                for item in inner(_checked(request, stream_in), context):
                    if not call.audited:
                        # A streaming servicer must audit before its first message.
                        self._record(call, "OK")
                    yield item
                if not call.audited:
                    self._record(call, "OK")
            except GeneratorExit:
                raise
            except BaseException as exc:
                self._fail(call, exc, context)
                raise
            finally:
                reset_current(token)

        return behaviour

    # -- auditing and errors --------------------------------------------------------------

    def _record(self, call: Call, status: str) -> None:
        """Write the call's audit event (once). Raises Unavailable if the log cannot."""
        if call.audited:
            return
        self._write(call, status)

    def _write(self, call: Call, status: str) -> None:
        call.audited = True
        if self._audit is None:
            return
        event = AuditEvent(
            organisation=call.organisation or None,
            role=call.role or None,
            method=call.method,
            dataset=call.dataset,
            project=call.project,
            policy_fingerprint=call.policy_fingerprint,
            key_ids=dict(call.key_ids),
            counts=dict(call.counts),
            status=status,
            # Only state changes have details; other events keep their old bytes.
            details=dict(call.details) if call.details else None,
        )
        try:
            self._audit(event)
        except Exception as exc:  # noqa: BLE001 - any failure to audit fails closed
            # Our own errors say why in value-free words; anything else by type only.
            why = str(exc) if isinstance(exc, PseudogateError) else type(exc).__name__
            if isinstance(exc, StorageFull):
                why = f"storage full at {exc.path}"
            log.error("audit write failed: %s", why)
            if isinstance(exc, StorageFull):
                raise AuditStorageFull(
                    "storage full: the audit log cannot be written; the call was refused"
                ) from None
            raise AuditUnavailable("audit log unavailable; the call was refused") from None

    def _fail(self, call: Call, exc: BaseException, context: grpc.ServicerContext) -> None:
        if not isinstance(exc, PseudogateError) and is_storage_full(exc):
            # Escaped the layers that translate it: still the caller's RESOURCE_EXHAUSTED.
            exc = storage_full(getattr(exc, "filename", None) or "an unknown path", exc)
        if isinstance(exc, PseudogateError):
            status, code_name = status_for(exc), grpc_code(exc).name
        elif not context.is_active():
            status, code_name = None, "CANCELLED"
        else:
            log.error("unexpected %s in %s at %s", type(exc).__name__, call.method, _where(exc))
            status, code_name = internal_status(), "INTERNAL"
        if not isinstance(exc, AuditUnavailable):
            # Audit the failure even after a commit point or streamed exchanges.
            try:
                self._write(call, code_name)
            except AuditUnavailable as unavailable:
                status = status_for(unavailable)
        log.info("%s refused: %s (org=%s)", call.method, code_name, call.organisation or "-")
        if status is None:
            raise exc
        context.abort_with_status(status)


def _fair_shared(
    handler: grpc.RpcMethodHandler[Any, Any], method: str, fair: FairShare
) -> grpc.RpcMethodHandler[Any, Any]:
    """The handler with its streaming behaviour under the fair-sharing limits (limits.py)."""
    kinds = (
        (handler.stream_unary, True, False, grpc.stream_unary_rpc_method_handler),
        (handler.unary_stream, False, True, grpc.unary_stream_rpc_method_handler),
        (handler.stream_stream, True, True, grpc.stream_stream_rpc_method_handler),
    )
    for behaviour, stream_in, stream_out, make in kinds:
        if behaviour is not None:
            return make(
                fair.guard(behaviour, method, stream_in=stream_in, stream_out=stream_out),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
    return handler


def _where(exc: BaseException) -> str:
    """file:line of the innermost frame: enough to debug, without the message (it may hold input)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return "?"
    return f"{tb.tb_frame.f_code.co_filename.rsplit('/', 1)[-1]}:{tb.tb_lineno}"


class _Malformed:
    """Stands in for a request message that did not parse (so it becomes INVALID_ARGUMENT)."""

    def __init__(self, errors: list[RowError] | None = None) -> None:
        self.errors = errors or []


_MALFORMED = _Malformed()


def _lenient(deserialise: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    """grpc answers INTERNAL when a deserializer raises; malformed input is the client's error."""
    if deserialise is None:
        return None
    descriptor = getattr(getattr(deserialise, "__self__", None), "DESCRIPTOR", None)

    def parse(data: bytes) -> Any:
        try:
            return deserialise(data)
        except Exception:  # noqa: BLE001 - any parse failure is a malformed message
            # Strings that are not UTF-8 are located, as row errors (issue 14 #4).
            errors = invalid_utf8_fields(descriptor, data) if descriptor is not None else []
            return _Malformed(errors) if errors else _MALFORMED

    return parse


def _refuse_malformed(message: Any) -> Any:
    if isinstance(message, _Malformed):
        if message.errors:
            raise RowErrors(message.errors, context="the request (string fields must be UTF-8)")
        raise InvalidInput("malformed request message: it does not parse as the RPC's request type")
    return message


def _checked(request: Any, stream_in: bool) -> Any:
    if not stream_in:
        return _refuse_malformed(request)
    return (_refuse_malformed(m) for m in request)
