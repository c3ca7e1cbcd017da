"""TokeniseStream throughput on loopback beside an echo baseline on the same transport.

The gateway runs in its own process (as in production) so client and server each get a core.
Run: python -m benchmarks server   (or python benchmarks/bench_server.py)
"""

from __future__ import annotations

import multiprocessing as mp
import os
import platform
import random
import sys
import time
from collections.abc import Iterator
from concurrent import futures

import grpc

from pseudogate.v1 import tokenisation_pb2 as pb
from pseudogate.v1 import tokenisation_pb2_grpc as pb_grpc

VALUES_PER_MESSAGE = 10_000
MESSAGES = 100  # 1,000,000 records per run
RUNS = 3


class EchoServicer(pb_grpc.TokenisationServiceServicer):
    """Same messages, no hashing: what the transport alone costs."""

    def TokeniseStream(self, request_iterator, context):  # type: ignore[no-untyped-def]
        for request in request_iterator:
            yield pb.TokeniseStreamResponse(tokens=request.values, batch_id=request.batch_id)


def _serve(kind: str, port_queue: mp.Queue, stop: mp.Event) -> None:  # type: ignore[type-arg]
    if kind == "echo":
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        pb_grpc.add_TokenisationServiceServicer_to_server(EchoServicer(), server)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        port_queue.put(port)
        stop.wait()
        server.stop(None)
        return
    import tempfile
    from pathlib import Path

    from pseudogate.service.app import GatewaySettings, start_gateway

    with tempfile.TemporaryDirectory() as tmp:
        gateway = start_gateway(GatewaySettings(port=0, insecure=True, data_dir=Path(tmp)))
        port_queue.put(gateway.port)
        stop.wait()
        gateway.stop(grace=None)


def _requests(values: list[str]) -> Iterator[pb.TokeniseStreamRequest]:
    for i in range(MESSAGES):
        yield pb.TokeniseStreamRequest(domain="nhs_number", values=values, batch_id=i)


def _measure(port: int, values: list[str]) -> float:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        grpc.channel_ready_future(channel).result(timeout=30)
        stub = pb_grpc.TokenisationServiceStub(channel)
        best = 0.0
        for _ in range(RUNS):
            t0 = time.perf_counter()
            n = 0
            for reply in stub.TokeniseStream(_requests(values)):
                n += len(reply.tokens)
            rate = n / (time.perf_counter() - t0)
            best = max(best, rate)
        return best


def _run(kind: str, values: list[str]) -> float:
    ctx = mp.get_context("spawn")
    q: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
    stop = ctx.Event()
    proc = ctx.Process(target=_serve, args=(kind, q, stop), daemon=True)
    proc.start()
    try:
        port = q.get(timeout=60)
        return _measure(port, values)
    finally:
        stop.set()
        proc.join(timeout=30)


def main() -> None:
    rng = random.Random(5)
    from pseudogate.synthetic import messy_nhs_number, nhs_number

    values = [messy_nhs_number(nhs_number(rng), rng) for _ in range(VALUES_PER_MESSAGE)]
    print(f"# TokeniseStream on loopback ({platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, Python {sys.version.split()[0]}, grpcio {grpc.__version__})")
    print(f"{VALUES_PER_MESSAGE:,} values per message, {MESSAGES} messages per run, best of {RUNS}")
    echo = _run("echo", values)
    print(f"echo baseline (same transport, no hashing): {echo:12,.0f} records/s")
    gateway = _run("gateway", values)
    print(f"TokeniseStream (normalise+validate+HMAC):   {gateway:12,.0f} records/s")
    print(f"gateway / echo: {gateway / echo:.2f}; target >= 1,000,000 records/s")


if __name__ == "__main__":
    main()
