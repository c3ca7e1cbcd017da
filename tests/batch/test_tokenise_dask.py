"""``pseudogate tokenise --engine dask``: the local engine's tokens and errors, on a cluster."""

from __future__ import annotations

import csv
import pickle
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pseudogate.batch.runner import check_scheduler_address
from pseudogate.cli import main
from pseudogate.core.errors import ConfigurationError
from pseudogate.core.keyring import Keyring
from pseudogate.core.nhs import check_digit

from .conftest import EXAMPLE_KEYRING

HEADER = ["id", "nhs", "note"]


def valid_nhs(n: int) -> str:
    for nine in range(n, n + 100):
        first = f"{nine % 10**9:09d}"
        digit = check_digit(first)
        if digit is not None:
            return first + str(digit)
    raise AssertionError("no valid number near n")


def write_csv(path: Path, rows: list[list[str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(HEADER)
        w.writerows(rows)
    return path


def write_parts(folder: Path, rows: list[list[str]], sizes: list[int], *, group: int = 2) -> Path:
    """Parquet partitions of ``rows`` (``sizes`` rows per file, ``group`` rows per row group)."""
    folder.mkdir()
    start = 0
    for i, size in enumerate(sizes):
        chunk = rows[start : start + size]
        start += size
        table = pa.table({name: [r[j] for r in chunk] for j, name in enumerate(HEADER)},
                         schema=pa.schema([(n, pa.string()) for n in HEADER]))
        pq.write_table(table, folder / f"p{i:03d}.parquet", row_group_size=max(group, 1))
    assert start == len(rows)
    return folder


def tokenise(capsys: pytest.CaptureFixture[str], src: Path | str, dst: Path,
             *extra: str) -> tuple[int, str, str]:
    code = main(["tokenise", "--keyring", str(EXAMPLE_KEYRING), "--domain", "person",
                 "--column", "nhs", "--input", str(src), "--output", str(dst), *extra])
    out, err = capsys.readouterr()
    return code, out, err


def read_rows(path: Path) -> list[list[str]]:
    if path.suffix == ".csv":
        with open(path, newline="", encoding="utf-8") as f:
            return list(csv.reader(f))[1:]
    table = pq.read_table(sorted(path.glob("*.parquet")))
    return [list(r.values()) for r in table.to_pylist()]


rows_strategy = st.lists(
    st.tuples(st.integers(0, 10**9), st.text(alphabet='ab ,"é\n', max_size=6)),
    min_size=0, max_size=40,
)


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(people=rows_strategy, data=st.data())
def test_when_a_table_is_tokenised_on_a_cluster_then_tokens_equal_the_local_engines(
    people: list[tuple[int, str]], data: st.DataObject, tmp_path_factory: pytest.TempPathFactory,
    scheduler: str, capsys: pytest.CaptureFixture[str],
) -> None:
    tmp = tmp_path_factory.mktemp("t")
    rows = [[str(i), valid_nhs(n), note] for i, (n, note) in enumerate(people)]
    src = write_csv(tmp / "in.csv", rows)
    assert tokenise(capsys, src, tmp / "local.csv")[0] == 0
    expected = (tmp / "local.csv").read_bytes()
    assert tokenise(capsys, src, tmp / "dask.csv", "--engine", "dask",
                    "--scheduler", scheduler)[0] == 0
    assert (tmp / "dask.csv").read_bytes() == expected
    cuts = sorted(data.draw(st.lists(st.integers(0, len(rows)), max_size=3)))
    sizes = [b - a for a, b in zip([0, *cuts], [*cuts, len(rows)], strict=True)]
    parts = write_parts(tmp / "parts", rows, sizes, group=data.draw(st.integers(1, 5)))
    code, out, err = tokenise(capsys, parts, tmp / "out", "--engine", "dask",
                              "--scheduler", scheduler)
    assert code == 0, err
    assert f"{len(rows):,} rows tokenised" in out
    assert read_rows(tmp / "out") == read_rows(tmp / "local.csv")
    assert tokenise(capsys, parts, tmp / "inproc.csv")[0] == 0  # local engine, Parquet input
    assert (tmp / "inproc.csv").read_bytes() == expected


def test_when_partitions_hold_invalid_numbers_then_rows_are_numbered_across_them_as_local_does(
    tmp_path: Path, scheduler: str, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [[str(i), valid_nhs(1000 * i), "x"] for i in range(30)]
    for i, bad in ((3, "12345"), (11, ""), (12, "9434765918"), (27, "186O913903")):
        rows[i][1] = bad
    src = write_csv(tmp_path / "in.csv", rows)
    code, _, local_err = tokenise(capsys, src, tmp_path / "local.csv")
    assert code == 2 and not (tmp_path / "local.csv").exists()
    parts = write_parts(tmp_path / "parts", rows, [5, 0, 10, 15], group=4)
    for out in ("out", "out.csv"):
        code, _, err = tokenise(capsys, parts, tmp_path / out, "--engine", "dask",
                                "--scheduler", scheduler)
        assert code == 2
        assert err.replace(str(parts), "IN") == local_err.replace(str(src), "IN")
        assert "row 4: bad_format" in err and "row 28: bad_format" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "parts"]


def test_when_more_rows_are_invalid_than_listed_then_the_count_is_all_of_them(
    tmp_path: Path, scheduler: str, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [[str(i), "bad", ""] for i in range(120)]
    src = write_csv(tmp_path / "in.csv", rows)
    _, _, local_err = tokenise(capsys, src, tmp_path / "local.csv")
    parts = write_parts(tmp_path / "parts", rows, [60, 60], group=7)
    code, _, err = tokenise(capsys, parts, tmp_path / "out", "--engine", "dask",
                            "--scheduler", scheduler)
    assert code == 2 and "120 invalid value(s)" in err and "and 70 more" in err
    assert err.replace(str(parts), "IN") == local_err.replace(str(src), "IN")


def test_when_a_csv_is_not_plain_then_the_dask_engine_refuses_it_and_names_the_local_engine(
    tmp_path: Path, scheduler: str, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "in.csv"
    src.write_text(f"id,nhs,note\n1,{valid_nhs(5)},a\n2,{valid_nhs(7)}\n")
    code, _, err = tokenise(capsys, src, tmp_path / "out", "--engine", "dask",
                            "--scheduler", scheduler)
    assert code == 2 and "--engine local" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]


def test_when_a_key_is_shipped_then_only_the_derived_domain_key_is_in_its_bytes() -> None:
    import base64
    import json

    ring = Keyring.load(EXAMPLE_KEYRING)
    shipped = ring.linkage_key_to_ship("person")
    blob = pickle.dumps(shipped)
    for entry in json.loads(EXAMPLE_KEYRING.read_text())["keys"]:
        assert base64.b64decode(entry["material"]) not in blob
    back = pickle.loads(blob)
    assert back.tokeniser().tokens(["9434765919"]) == ring.linkage_tokeniser("person").tokens(
        ["9434765919"])
    assert "person" in repr(back) and "ShippedKey" in repr(back)
    with pytest.raises(TypeError):
        pickle.dumps(ring)
    with pytest.raises(TypeError):
        pickle.dumps(back.tokeniser())


@pytest.mark.parametrize("address", ["tcp://10.1.2.3:8786", "10.1.2.3:8786",
                                     "tcp://scheduler.example:8786", "ucx://10.1.2.3:1"])
def test_when_a_scheduler_is_plaintext_and_remote_then_it_is_refused(address: str) -> None:
    with pytest.raises(ConfigurationError):
        check_scheduler_address(address)


@pytest.mark.parametrize("address", ["tls://scheduler.example:8786", "tcp://127.0.0.1:8786",
                                     "localhost:8786", "tcp://[::1]:8786", "inproc://x/1/2"])
def test_when_a_scheduler_is_tls_or_loopback_then_it_is_accepted(address: str) -> None:
    check_scheduler_address(address)


def test_when_the_output_folder_exists_then_nothing_is_overwritten(
    tmp_path: Path, scheduler: str, capsys: pytest.CaptureFixture[str]
) -> None:
    src = write_csv(tmp_path / "in.csv", [["1", valid_nhs(3), ""]])
    (tmp_path / "out").mkdir()
    code, _, err = tokenise(capsys, src, tmp_path / "out", "--engine", "dask",
                            "--scheduler", scheduler)
    assert code == 2 and "already exists" in err


def test_when_no_scheduler_is_given_then_a_local_cluster_is_started_for_the_job(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [[str(i), valid_nhs(77 * i), "n"] for i in range(10)]
    src = write_csv(tmp_path / "in.csv", rows)
    assert tokenise(capsys, src, tmp_path / "local.csv")[0] == 0
    code, _, err = tokenise(capsys, src, tmp_path / "dask.csv", "--engine", "dask",
                            "--worker-memory", "512MiB")
    assert code == 0, err
    assert "distributed" not in err  # Dask's INFO lines are not shown
    assert (tmp_path / "dask.csv").read_bytes() == (tmp_path / "local.csv").read_bytes()


@pytest.mark.parametrize("extra", [["--scheduler", "tcp://127.0.0.1:1"],
                                   ["--worker-memory", "4GiB"]])
def test_when_dask_options_are_given_to_the_local_engine_then_they_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str]
) -> None:
    src = write_csv(tmp_path / "in.csv", [["1", valid_nhs(3), ""]])
    code, _, err = tokenise(capsys, src, tmp_path / "out.csv", *extra)
    assert code == 2 and "need --engine dask" in err


def test_when_a_task_keeps_killing_its_workers_then_the_error_says_memory_not_a_traceback(
) -> None:
    from distributed import KilledWorker

    from pseudogate.batch.runner import _worker_deaths
    from pseudogate.core.errors import ResourceExhausted

    with pytest.raises(ResourceExhausted, match="--worker-memory"), _worker_deaths():
        raise KilledWorker("task-1", "tcp://127.0.0.1:1", 3)
