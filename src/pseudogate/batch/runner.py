"""Where partition work runs: in this process, or on the workers of a Dask cluster.

A :class:`Runner` maps a function over partitions and returns the results in partition
order. :func:`dask_runner` connects to a scheduler (``--scheduler``) or starts a
``LocalCluster`` sized to the machine (one single-threaded worker per core, each limited to
``--worker-memory``, by default an equal share of the machine's memory). Dask is imported
only there.

Keys reach the workers only as the derived per-domain keys a job needs, inside its tasks; a
scheduler reached over plaintext TCP is refused unless it is on this machine (loopback), so
derived keys cross a network only under Dask's TLS (``tls://``, docs/keys.md).
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import logging
import operator
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

from pseudogate.core.errors import ConfigurationError, ResourceExhausted, Unavailable

__all__ = ["DaskRunner", "Held", "InProcess", "Runner", "check_scheduler_address", "dask_runner"]

T = TypeVar("T")
R = TypeVar("R")
#: A result kept by :meth:`Runner.hold` (the value itself in process, a future on a cluster).
Held = Any


#: Partial results combined at once by :meth:`Runner.map_reduce`.
FAN_IN = 8


class Runner(Protocol):
    """Maps ``fn(item, **kwargs)`` over items; results in item order."""

    def map(self, fn: Callable[..., R], items: Sequence[T], **kwargs: Any) -> list[R]: ...

    def map_reduce(self, fn: Callable[..., R], items: Sequence[T],
                   combine: Callable[[list[R]], R], **kwargs: Any) -> R:
        """``combine`` of the results of ``fn`` over items, combined ``FAN_IN`` at a time in
        item order (on the workers, for a cluster): only the final result reaches here."""
        ...

    def hold(self, fn: Callable[..., R], items: Sequence[T], **kwargs: Any) -> list[Held]:
        """``fn`` over items, its results kept where they were made (a cluster's workers'
        memory) for later :meth:`map_held` and :meth:`shuffle` calls, until :meth:`release`."""
        ...

    def map_held(self, fn: Callable[..., R], held: Sequence[Held], **kwargs: Any) -> list[R]:
        """``fn`` of each held result, gathered here in order."""
        ...

    def shuffle(self, split: Callable[..., list[T]], held: Sequence[Held], buckets: int,
                reduce: Callable[..., R], **kwargs: Any) -> list[Held]:
        """Each held result cut into ``buckets`` pieces by ``split(item, buckets=…, **kwargs)``;
        piece ``b`` of every item goes to ``reduce(pieces)`` for bucket ``b`` (so that every
        row of one key meets in one reduction). The reductions stay held (gather them with
        :meth:`map_held`)."""
        ...

    def release(self, held: Sequence[Held]) -> None:
        """Forget held results (a cluster frees their memory)."""
        ...


class InProcess:
    """Runs every partition here, one after the other."""

    def map(self, fn: Callable[..., R], items: Sequence[T], **kwargs: Any) -> list[R]:
        return [fn(item, **kwargs) for item in items]

    def map_reduce(self, fn: Callable[..., R], items: Sequence[T],
                   combine: Callable[[list[R]], R], **kwargs: Any) -> R:
        pending: list[R] = []
        for item in items:
            pending.append(fn(item, **kwargs))
            if len(pending) == FAN_IN:
                pending = [combine(pending)]
        return combine(pending)

    def hold(self, fn: Callable[..., R], items: Sequence[T], **kwargs: Any) -> list[Held]:
        return self.map(fn, items, **kwargs)

    def map_held(self, fn: Callable[..., R], held: Sequence[Held], **kwargs: Any) -> list[R]:
        return [fn(item, **kwargs) for item in held]

    def shuffle(self, split: Callable[..., list[T]], held: Sequence[Held], buckets: int,
                reduce: Callable[..., R], **kwargs: Any) -> list[Held]:
        pieces = [split(item, buckets=buckets, **kwargs) for item in held]
        return [reduce([p[b] for p in pieces]) for b in range(buckets)]

    def release(self, held: Sequence[Held]) -> None:
        pass


class DaskRunner:
    """Runs partitions as tasks on a Dask cluster (one task per partition)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    @property
    def workers(self) -> int:
        return len(self.client.scheduler_info(n_workers=-1)["workers"])

    def map(self, fn: Callable[..., R], items: Sequence[T], **kwargs: Any) -> list[R]:
        if not items:
            return []
        # The options travel bound to the function: client.map reserves some keyword names.
        futures = self.client.map(functools.partial(fn, **kwargs), list(items), pure=False)
        try:
            with _worker_deaths():
                return list(self.client.gather(futures))
        except BaseException:
            self.client.cancel(futures)  # stop the rest; finished futures are simply released
            raise

    def map_reduce(self, fn: Callable[..., R], items: Sequence[T],
                   combine: Callable[[list[R]], R], **kwargs: Any) -> R:
        futures = self.client.map(functools.partial(fn, **kwargs), list(items), pure=False)
        # Every level stays referenced until the end: cancelling a task whose dependents the
        # client no longer holds trips an assertion in the scheduler (distributed 2026.8,
        # Scheduler.stimulus_cancel), which drops the client's connection.
        created = list(futures)
        level = futures
        try:
            while True:
                level = [self.client.submit(combine, level[i : i + FAN_IN], pure=False)
                         for i in range(0, max(len(level), 1), FAN_IN)]
                created.extend(level)
                if len(level) == 1:
                    with _worker_deaths():
                        return level[0].result()  # type: ignore[no-any-return]
        except BaseException:
            self.client.cancel(created)
            raise

    def hold(self, fn: Callable[..., R], items: Sequence[T], **kwargs: Any) -> list[Held]:
        futures = self.client.map(functools.partial(fn, **kwargs), list(items), pure=False)
        self._wait(futures)
        return list(futures)

    def map_held(self, fn: Callable[..., R], held: Sequence[Held], **kwargs: Any) -> list[R]:
        if not held:
            return []
        futures = self.client.map(functools.partial(fn, **kwargs), list(held), pure=False)
        with _worker_deaths():
            return list(self.client.gather(futures))

    def shuffle(self, split: Callable[..., list[T]], held: Sequence[Held], buckets: int,
                reduce: Callable[..., R], **kwargs: Any) -> list[Held]:
        client = self.client
        pieces = client.map(functools.partial(split, buckets=buckets, **kwargs), list(held),
                            pure=False)
        cuts = [[client.submit(operator.getitem, p, b, pure=False) for p in pieces]
                for b in range(buckets)]
        reduced = [client.submit(reduce, cut, pure=False)
                   for cut in cuts]
        self._wait(reduced)
        return reduced

    def release(self, held: Sequence[Held]) -> None:
        for future in held:
            future.release()

    def _wait(self, futures: list[Any]) -> None:
        """Until every future is done; a failed one raises here (as gather would)."""
        with _worker_deaths():
            for future in futures:
                if future.exception() is not None:  # waits; no result crosses the network
                    future.result()


@contextlib.contextmanager
def _worker_deaths() -> Iterator[None]:
    """A task whose workers kept dying (usually past their memory limit) is a clear error."""
    from distributed import KilledWorker

    try:
        yield
    except KilledWorker:
        raise ResourceExhausted(
            "a partition's task killed its Dask worker several times (usually: more memory "
            "than the worker's limit): give workers more memory (--worker-memory, or dask "
            "worker --memory-limit) or the input smaller partitions"
        ) from None


_LOOPBACK_NAMES = {"localhost", "ip6-localhost"}


def check_scheduler_address(address: str) -> None:
    """Refuse a scheduler that derived keys would reach over a network in plaintext.

    ``tls://`` is accepted (Dask's TLS, configured as docs/keys.md says); ``tcp://`` only to a
    loopback address; ``inproc://`` (same process) always.
    """
    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    scheme = parts.scheme
    if scheme in ("tls", "inproc"):
        return
    if scheme not in ("tcp", "ws"):
        raise ConfigurationError(f"scheduler address {address!r}: use tls://HOST:PORT "
                                 "(or tcp:// on this machine only)")
    host = parts.hostname or ""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host in _LOOPBACK_NAMES
    if not loopback:
        raise ConfigurationError(
            f"scheduler address {address!r} is plaintext TCP to another machine: the job's "
            "derived keys would cross the network in clear; use a tls:// address and Dask's "
            "TLS settings (docs/keys.md, 'Keys on a Dask cluster')"
        )


class SchedulerUnreachable(Unavailable, OSError):
    """A scheduler that could not be connected to. Also an ``OSError``: what Dask raises for
    it, and what callers that wrap the failure in their own message catch."""


def _client_security(scheduler: str) -> Any:
    """Dask's ``Security`` from its config (files under DASK_CONFIG, ``DASK_...`` variables);
    for ``tls://``, refused unless it holds the client's CA file, certificate and key (without
    them Dask fails later with a ``TypeError`` about an ``ssl_context``)."""
    from distributed.security import Security

    security = Security()
    if urlsplit(scheduler).scheme == "tls" and \
            security.get_connection_args("client")["ssl_context"] is None:
        raise ConfigurationError(
            f"scheduler {scheduler!r} needs Dask's TLS client settings: "
            "distributed.comm.tls.ca-file, .client.cert and .client.key (or "
            "DASK_DISTRIBUTED__COMM__TLS__CA_FILE, ..._CLIENT__CERT, ..._CLIENT__KEY): "
            "docs/keys.md, 'Keys on a Dask cluster'")
    return security


@contextlib.contextmanager
def dask_runner(*, scheduler: str | None = None, worker_memory: str | None = None,
                workers: int | None = None, quiet: bool = True) -> Iterator[DaskRunner]:
    """A :class:`DaskRunner` on ``scheduler``, or on a new ``LocalCluster`` (closed after).

    ``quiet``: Dask's own INFO lines (every start, stop and cancelled task) are not shown.
    """
    from distributed import Client, LocalCluster

    if quiet:
        for name in [n for n in logging.root.manager.loggerDict if n.startswith("distributed")]:
            logging.getLogger(name).setLevel(logging.WARNING)

    if scheduler is not None:
        check_scheduler_address(scheduler)
        security = _client_security(scheduler)
        try:
            client = Client(scheduler, security=security, set_as_default=False)
        except OSError as exc:  # refused, timed out, or a TLS handshake that failed
            raise SchedulerUnreachable(
                f"the Dask scheduler {scheduler} could not be reached ({exc}); check the "
                "address and, for tls://, Dask's TLS client settings (docs/keys.md, "
                "'Keys on a Dask cluster')") from None
        with client:
            yield DaskRunner(client)
        return
    n = workers or os.cpu_count() or 1
    with (
        LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                     memory_limit=worker_memory or "auto",
                     dashboard_address="127.0.0.1:0") as cluster,  # loopback, any free port
        Client(cluster, set_as_default=False) as client,
    ):
        yield DaskRunner(client)
