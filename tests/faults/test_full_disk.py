"""A full disk: the data directory on a small filesystem filled so a submission cannot be written.

The caller must be told the storage is full (RESOURCE_EXHAUSTED), nothing partial may be left,
the gateway must go on answering, and once space is freed a submission must work and the
invariant hold. The gateway runs in-process on the filesystem; a little room is left for the
audit log, so that what fails is the submission's own file.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from pseudogate.service.server import GatewayServer
from pseudogate.v1 import admin_pb2, admin_pb2_grpc, dataset_pb2_grpc
from pseudogate.v1 import tokenisation_pb2 as tok_pb2
from pseudogate.v1 import tokenisation_pb2_grpc as tok_grpc

from .invariants import CatalogState, InvariantReport, read_catalog
from .workload import GP_DATASET, gp_header, large_submission, requests

ROOM_LEFT = 256 * 1024  # for the audit log's WAL and the catalog: far less than the submission


def _fill(disk: Path, *, leave: int) -> Path:
    """One file taking all the free space but ``leave`` bytes."""
    filler = disk / "filler"
    stat = os.statvfs(disk)
    size = stat.f_bavail * stat.f_frsize - leave
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
            raise
        chunk = b"\0" * (1 << 20)
        while size > 0:
            size -= os.write(fd, chunk[: min(size, len(chunk))])
    finally:
        os.close(fd)
    return filler


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@dataclass
class FullDisk:
    """A gateway whose data directory sits on a filesystem with almost no room left."""

    data: Path
    filler: Path
    server: GatewayServer
    before: CatalogState
    stored_before: list[str]

    def submit(self) -> tuple[grpc.StatusCode, str, Any]:
        with grpc.insecure_channel(self.server.address) as channel:
            try:
                reply = dataset_pb2_grpc.DatasetServiceStub(channel).SubmitDataset(
                    requests(gp_header(), large_submission()), timeout=60
                )
            except grpc.RpcError as exc:
                return exc.code(), exc.details() or "", None
        return grpc.StatusCode.OK, "", reply


@pytest.fixture
def full_disk(
    small_disk: Path, template_dir: Path, gateway: Callable[..., GatewayServer]
) -> FullDisk:
    data = Path(shutil.copytree(template_dir, small_disk / "data"))
    server = gateway(data)
    filler = _fill(small_disk, leave=ROOM_LEFT)
    return FullDisk(data, filler, server, read_catalog(data), _files(data / "datasets"))


def test_when_the_disk_is_full_then_a_submission_is_resource_exhausted_saying_storage_is_full(
    full_disk: FullDisk,
) -> None:
    code, details, _ = full_disk.submit()
    print(f"full disk: SubmitDataset answered {code.name} {details!r}")
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, (code, details)
    assert "storage" in details.lower() and "full" in details.lower(), details


def test_when_the_disk_is_full_then_nothing_partial_is_left_and_the_gateway_recovers_once_freed(
    full_disk: FullDisk, invariant: Callable[..., InvariantReport]
) -> None:
    code, details, _ = full_disk.submit()
    print(f"full disk: SubmitDataset answered {code.name} {details!r}")
    assert code != grpc.StatusCode.OK, "the submission cannot have fitted"
    data = full_disk.data
    assert read_catalog(data) == full_disk.before, "the catalog changed"
    assert _files(data / "datasets") == full_disk.stored_before, "a dataset file was left"
    assert not _files(data / "tmp"), "a partial staging file was left"

    with grpc.insecure_channel(full_disk.server.address) as channel:  # still answering
        reply = tok_grpc.TokenisationServiceStub(channel).Tokenise(
            tok_pb2.TokeniseRequest(domain="person", values=["943 476 5919"]), timeout=30
        )
        assert len(reply.tokens) == 1
        admin_pb2_grpc.AdminServiceStub(channel).LinkageReport(
            admin_pb2.LinkageReportRequest(), timeout=30
        )

    full_disk.filler.unlink()
    code, details, stored = full_disk.submit()
    assert code == grpc.StatusCode.OK, (code, details)
    assert stored.version == 2 and (GP_DATASET, 2) in read_catalog(data).versions
    full_disk.server.stop(grace=None)
    invariant(data, context="after a full disk was freed")
