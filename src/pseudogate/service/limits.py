"""Fair sharing of the server: stream and extract slots per organisation, idle streams closed.

Why: the synchronous gRPC server runs every call on one pool of worker threads, and a stream
holds its worker for as long as it is open. Without limits, one organisation that opens
streams and then sends nothing (or asks for many extracts at once) holds every worker and
every other caller, health checks included, waits. So:

- every streaming RPC takes a *stream slot*: at most ``max_streams_per_org`` per organisation
  and ``max_streams`` for the whole gateway, which is kept below the number of workers so that
  unary calls and health checks always find one free;
- ``CreateExtract`` also takes an *extract slot* (per organisation and gateway-wide): each
  extract holds its joined tables in memory, so this bounds the memory extracts can take;
- a client stream whose next message does not arrive within ``idle_timeout`` seconds ends
  ``DEADLINE_EXCEEDED``, which frees its worker (a submission is aborted: nothing is stored);
- a server stream whose client takes no response message for ``idle_timeout`` seconds (HTTP/2
  flow control holds the worker in gRPC's send) is cancelled by a watchdog thread.

Beyond a limit the call is refused ``RESOURCE_EXHAUSTED`` at once, and audited as such.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc

from pseudogate.core.errors import ConfigurationError, ErrorCode, PseudogateError, ResourceExhausted
from pseudogate.service.calls import current_call

__all__ = [
    "EXTRACT_METHODS",
    "RESERVED_WORKERS",
    "FairShare",
    "Slots",
    "StreamIdle",
    "StreamLimits",
]

log = logging.getLogger("pseudogate.rpc")

#: Workers that streams can never take: they are left for unary calls and health checks.
RESERVED_WORKERS = 4
#: RPCs that build an extract in memory (they take an extract slot as well as a stream slot).
EXTRACT_METHODS = frozenset({"/pseudogate.v1.ExtractService/CreateExtract"})
#: Streams of unaudited services (server reflection) share this bucket: they have no organisation.
UNAUDITED_BUCKET = "(unaudited)"


class StreamIdle(PseudogateError):
    """A client stream sent nothing for too long; it is closed to free its worker."""

    code = ErrorCode.DEADLINE_EXCEEDED


@dataclass(frozen=True, slots=True)
class StreamLimits:
    """The fair-sharing settings (see the module docstring for what each one bounds)."""

    idle_timeout: float = 30.0  # seconds a client stream may go without a message
    max_streams_per_org: int = 4  # open streams (any streaming RPC) per organisation
    max_extracts_per_org: int = 2  # extracts being built or sent per organisation
    max_extracts: int = 4  # extracts being built or sent, gateway-wide

    def __post_init__(self) -> None:
        if not 0 < self.idle_timeout < math.inf:
            raise ConfigurationError("the idle stream timeout must be a positive number of seconds")
        for name in ("max_streams_per_org", "max_extracts_per_org", "max_extracts"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigurationError(f"{name.replace('_', '-')} must be a positive integer")


class Slots:
    """How many of something each organisation holds, under a per-organisation and a total limit."""

    def __init__(self, *, what: str, per_org: int, total: int) -> None:
        self._what = what
        self._per_org = per_org
        self._total = total
        self._held: Counter[str] = Counter()
        self._lock = threading.Lock()

    @property
    def held(self) -> int:
        with self._lock:
            return sum(self._held.values())

    @contextlib.contextmanager
    def hold(self, organisation: str) -> Iterator[None]:
        """Hold one slot for the block; ``ResourceExhausted`` at once when none is free."""
        with self._lock:
            if self._held[organisation] >= self._per_org:
                raise ResourceExhausted(
                    f"organisation {organisation!r} already has {self._per_org} {self._what} open "
                    "(the limit per organisation): wait for one to finish, then retry"
                )
            if sum(self._held.values()) >= self._total:
                raise ResourceExhausted(
                    f"the gateway is serving its limit of {self._total} {self._what}: retry later"
                )
            self._held[organisation] += 1
        try:
            yield
        finally:
            with self._lock:
                self._held[organisation] -= 1
                if self._held[organisation] <= 0:
                    del self._held[organisation]


class _IdleTimeoutReader:
    """Iterates over client messages, raising ``StreamIdle`` when the next one is too late.

    A sync gRPC request iterator cannot be read with a timeout, so a reader thread does the
    blocking ``next`` while the worker waits on a queue with one. The reader fetches a message
    only when the worker asks for one, so no more is buffered than without it (HTTP/2 flow
    control still pushes back on a fast client).
    """

    def __init__(self, source: Iterator[Any], *, timeout: float) -> None:
        self._source = source
        self._timeout = timeout
        self._asks: queue.SimpleQueue[bool] = queue.SimpleQueue()
        self._answers: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._done = False

    def __iter__(self) -> _IdleTimeoutReader:
        return self

    def __next__(self) -> Any:
        if self._done:
            raise StopIteration
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._read, name="pseudogate-stream-reader", daemon=True
            )
            self._thread.start()
        self._asks.put(True)
        try:
            kind, value = self._answers.get(timeout=self._timeout)
        except queue.Empty:
            self._done = True
            raise StreamIdle(
                f"no message for {self._timeout:g} s; the stream was closed "
                "(nothing from it was kept): send without pauses, or reconnect and start again"
            ) from None
        if kind == "message":
            return value
        self._done = True
        if kind == "end":
            raise StopIteration
        raise value

    def close(self) -> None:
        """Let the reader thread go (if it is waiting to be asked)."""
        self._done = True
        self._asks.put(False)

    def _read(self) -> None:
        # Ends when told to, or with the stream: once the worker has answered the call, gRPC
        # ends the request iterator, so a reader left waiting on a late message ends too.
        while self._asks.get():
            try:
                message = next(self._source)
            except StopIteration:
                self._answers.put(("end", None))
                return
            except BaseException as exc:  # noqa: BLE001 - handed to the worker, which raises it
                self._answers.put(("error", exc))
                return
            self._answers.put(("message", message))


class _SendWatchdog:
    """Cancels a stream whose client has not taken a response message for ``timeout`` seconds.

    The worker is blocked inside gRPC while a message waits for HTTP/2 flow control; the only
    public way to free it is ``context.cancel()``, which this one thread does for all streams.
    """

    def __init__(self, *, timeout: float) -> None:
        self._timeout = timeout
        self._waiting: dict[int, tuple[float, grpc.ServicerContext, str]] = {}
        self._ids = itertools.count()
        self._condition = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False

    @contextlib.contextmanager
    def watch(self, context: grpc.ServicerContext, method: str) -> Iterator[None]:
        key = next(self._ids)
        with self._condition:
            self._waiting[key] = (time.monotonic() + self._timeout, context, method)
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(
                    target=self._run, name="pseudogate-send-watchdog", daemon=True
                )
                self._thread.start()
            self._condition.notify()
        try:
            yield
        finally:
            with self._condition:
                self._waiting.pop(key, None)

    def close(self) -> None:
        with self._condition:
            self._closed = True
            self._condition.notify()

    def _run(self) -> None:
        while True:
            with self._condition:
                if self._closed:
                    return
                now = time.monotonic()
                expired = [k for k, (deadline, _, _) in self._waiting.items() if deadline <= now]
                if not expired:
                    nearest = min((d for d, _, _ in self._waiting.values()), default=None)
                    self._condition.wait(None if nearest is None else nearest - now)
                    continue
                stalled = [self._waiting.pop(k) for k in expired]
            for _, context, method in stalled:
                log.info(
                    "%s cancelled: its client took no response for %g s", method, self._timeout
                )
                context.cancel()  # type: ignore[no-untyped-call]  # unannotated in grpc-stubs


class FairShare:
    """The fair-sharing policy, applied by the interceptor around each streaming RPC."""

    def __init__(self, limits: StreamLimits, *, max_streams: int) -> None:
        self.limits = limits
        self.streams = Slots(what="streams", per_org=limits.max_streams_per_org, total=max_streams)
        self.extracts = Slots(
            what="extracts",
            per_org=limits.max_extracts_per_org,
            total=limits.max_extracts,
        )
        self._sends = _SendWatchdog(timeout=limits.idle_timeout)

    def close(self) -> None:
        """Stop the watchdog thread (when the server stops)."""
        self._sends.close()

    @contextlib.contextmanager
    def _slots(self, method: str, organisation: str) -> Iterator[None]:
        with contextlib.ExitStack() as stack:
            stack.enter_context(self.streams.hold(organisation))
            if method in EXTRACT_METHODS:
                stack.enter_context(self.extracts.hold(organisation))
            yield

    def guard(
        self,
        inner: Callable[..., Any],
        method: str,
        *,
        stream_in: bool,
        stream_out: bool,
        organisation: Callable[[], str] = lambda: current_call().organisation,
    ) -> Callable[..., Any]:
        """``inner`` (a servicer behaviour) holding slots and with an idle-timed request stream.

        Runs inside the interceptor's wrapper, after identification: the organisation is the
        current call's, and a ``ResourceExhausted`` or ``StreamIdle`` is audited and mapped there.
        """
        if not stream_in and not stream_out:
            return inner
        timeout = self.limits.idle_timeout

        if stream_out:

            def streaming(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                with self._slots(method, organisation()):
                    reader = _IdleTimeoutReader(request, timeout=timeout) if stream_in else None
                    responses = inner(request if reader is None else reader, context)
                    try:
                        for response in responses:
                            # Suspended here while gRPC sends it: a client that takes nothing
                            # holds the worker, so the watchdog cancels the call.
                            with self._sends.watch(context, method):
                                yield response
                    finally:
                        if hasattr(responses, "close"):
                            responses.close()
                        if reader is not None:
                            reader.close()

            return streaming

        def client_streaming(request: Any, context: grpc.ServicerContext) -> Any:
            with self._slots(method, organisation()):
                reader = _IdleTimeoutReader(request, timeout=timeout)
                try:
                    return inner(reader, context)
                finally:
                    reader.close()

        return client_streaming

    def guard_unaudited(
        self, handler: grpc.RpcMethodHandler[Any, Any]
    ) -> grpc.RpcMethodHandler[Any, Any]:
        """Server reflection streams: slots and idle timeout too, refused with a plain abort."""
        if handler.stream_stream is None:
            return handler  # health Check is unary; health Watch is non-blocking (holds no worker)
        inner = self.guard(
            handler.stream_stream,
            "",
            stream_in=True,
            stream_out=True,
            organisation=lambda: UNAUDITED_BUCKET,
        )

        def behaviour(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            try:
                yield from inner(request, context)
            except ResourceExhausted as exc:
                context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
            except StreamIdle as exc:
                context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, str(exc))

        return grpc.stream_stream_rpc_method_handler(
            behaviour,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
