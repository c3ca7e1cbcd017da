"""Opt-out imports over gRPC and the CLI: empty lists refused unless meant, counts printed
(issue 14 #5), bytes that are not UTF-8 located by row and column (#4)."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from pseudogate.cli import main
from pseudogate.service.server import GatewayServer
from pseudogate.tools.synthetic import make_people
from pseudogate.v1 import admin_pb2, admin_pb2_grpc

NUMBERS = [p.nhs_number for p in make_people(4, seed=3)]


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _import(gateway: GatewayServer, path: Path, *extra: str) -> int:
    return main(["optout", "import", "--server", gateway.address, "--insecure",
                 "--input", str(path), *extra])


def test_when_an_empty_list_is_sent_without_allow_empty_then_invalid_argument_and_snapshot_kept(
    channel: grpc.Channel,
) -> None:
    admin = admin_pb2_grpc.AdminServiceStub(channel)
    first = admin.ImportOptOuts(admin_pb2.ImportOptOutsRequest(nhs_numbers=NUMBERS))
    assert (first.snapshot, first.count, first.previous_snapshot, first.previous_count) == (1, 4, 0, 0)
    with pytest.raises(grpc.RpcError) as caught:
        admin.ImportOptOuts(admin_pb2.ImportOptOutsRequest(nhs_numbers=[]))
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "allow_empty" in (caught.value.details() or "")
    again = admin.ImportOptOuts(admin_pb2.ImportOptOutsRequest(nhs_numbers=NUMBERS[:2]))
    assert (again.snapshot, again.count, again.previous_snapshot, again.previous_count) == (2, 2, 1, 4)
    cleared = admin.ImportOptOuts(admin_pb2.ImportOptOutsRequest(allow_empty=True))
    assert (cleared.snapshot, cleared.count, cleared.previous_snapshot, cleared.previous_count) == (
        3, 0, 2, 2
    )


def test_when_the_file_has_a_header_and_no_rows_then_the_cli_refuses_without_allow_empty(
    insecure_gateway: GatewayServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    full = _write(tmp_path / "full.csv", ("nhs_number\n" + "\n".join(NUMBERS) + "\n").encode())
    empty = _write(tmp_path / "empty.csv", b"nhs_number\n")
    assert _import(insecure_gateway, full) == 0
    out = capsys.readouterr().out
    assert "previous opt-outs: none" in out and "snapshot 1: 4 people" in out

    assert _import(insecure_gateway, empty) == 2
    captured = capsys.readouterr()
    assert "holds no rows" in captured.err and "--allow-empty" in captured.err
    assert captured.out == ""

    assert _import(insecure_gateway, empty, "--allow-empty") == 0
    out = capsys.readouterr().out
    assert "previous opt-outs: snapshot 1: 4 people" in out
    assert "new opt-outs: snapshot 2: 0 people" in out


def test_when_the_file_holds_bytes_that_are_not_utf8_then_rows_and_columns_are_reported(
    insecure_gateway: GatewayServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = ("nhs_number,note\n" + f"{NUMBERS[0]},a\n").encode() + NUMBERS[1].encode() + b"\xff,b\n"
    data += b"x,\xc3(\n"
    path = _write(tmp_path / "bad.csv", data)
    assert _import(insecure_gateway, path) == 2
    err = capsys.readouterr().err
    assert "row 2, column 'nhs_number': invalid_utf8" in err
    assert "row 3, column 'note': invalid_utf8" in err
    assert NUMBERS[1] not in err and NUMBERS[0] not in err
