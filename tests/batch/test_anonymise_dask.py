"""``anonymise --engine dask``: the local engine's levels, suppressed rows and report figures."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pseudogate.anonymity import anonymise
from pseudogate.batch.anonymise import anonymise_parts
from pseudogate.batch.inputs import find_inputs
from pseudogate.batch.runner import DaskRunner, InProcess, Runner
from pseudogate.cli import main
from pseudogate.core.errors import PseudogateError
from pseudogate.core.keyring import Keyring
from pseudogate.core.policy import load_policy, parse_policy
from tests.anonymity.conftest import ADULT, adult_policy_text

from .conftest import EXAMPLE_KEYRING

POLICY = """\
version: 1
name: gp
columns:
  nhs: {action: tokenise, kind: nhs_number, domain: person}
  name: {action: drop}
  dob: {action: generalise, hierarchy: {type: date, levels: [month, year, 10y]}}
  postcode: {action: generalise, hierarchy: {type: postcode}}
  imd: {action: generalise, hierarchy: {type: interval, widths: [2, 10]}}
  sex: {action: generalise, hierarchy: {type: suppress}}
  person: {action: keep}
  diagnosis: {action: keep, sensitive: true}
privacy: {PRIVACY}
"""
COLUMNS = ["nhs", "name", "dob", "postcode", "imd", "sex", "person", "diagnosis"]
POSTCODES = ["LL15 1AA", "ll15 1ab", "LL16 3ZZ", "CF10 1AA", "CF11 9XY"]


def _nhs(stem: int) -> str:
    for s in range(stem, stem + 20):
        nine = f"{s % 10**9:09d}"
        check = 11 - sum(int(d) * w for d, w in zip(nine, range(10, 1, -1), strict=True)) % 11
        if check != 10:
            return nine + str(0 if check == 11 else check)
    raise AssertionError


row_strategy = st.tuples(
    st.integers(0, 30), st.sampled_from(["1958-11-02", "1958-11-20", "1961-03-01", "1970-01-31"]),
    st.sampled_from(POSTCODES), st.integers(1, 12), st.sampled_from(["F", "M"]),
    st.sampled_from(["flu", "cold", "gout"]),
)


def _frame(rows: list[tuple[Any, ...]]) -> pd.DataFrame:
    return pd.DataFrame({
        "nhs": [_nhs(1000 * r[0]) for r in rows], "name": [f"n{i}" for i in range(len(rows))],
        "dob": [r[1] for r in rows], "postcode": [r[2] for r in rows],
        "imd": [str(r[3]) for r in rows], "sex": [r[4] for r in rows],
        "person": [f"p{r[0]}" for r in rows], "diagnosis": [r[5] for r in rows],
    }, columns=COLUMNS, dtype=object)


def _parts(frame: pd.DataFrame, folder: Path, cuts: list[int], group: int) -> Path:
    folder.mkdir()
    bounds = [0, *sorted(cuts), len(frame)]
    for i, (a, b) in enumerate(itertools.pairwise(bounds)):
        table = pa.Table.from_pandas(frame.iloc[a:b], preserve_index=False,
                                     schema=pa.schema([(c, pa.string()) for c in COLUMNS]))
        pq.write_table(table, folder / f"part{i:02d}.parquet", row_group_size=group)
    return folder


def small_job(tmp_path: Path, rows: list[tuple[Any, ...]], *, privacy: str, cuts: list[int],
              group: int) -> tuple[Path, list[str]]:
    """``rows`` as in.csv and as Parquet partitions, a policy with ``privacy``: the
    partitions' folder and the common ``anonymise`` arguments."""
    frame = _frame(rows)
    (tmp_path / "p.yaml").write_text(POLICY.replace("{PRIVACY}", privacy))
    frame.to_csv(tmp_path / "in.csv", index=False)
    parts = _parts(frame, tmp_path / "parts", cuts, group=group)
    return parts, ["anonymise", "--policy", str(tmp_path / "p.yaml"), "--keyring",
                   str(EXAMPLE_KEYRING)]


def _report(report: Any) -> dict[str, Any]:
    got: dict[str, Any] = report.to_json()
    got["search"].pop("seconds")
    return got


@settings(max_examples=10, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(rows=st.lists(row_strategy, max_size=60), data=st.data(),
       privacy=st.sampled_from(["{k: 2, suppression_limit: 0.1}",
                                "{k: 3, l: 2, suppression_limit: 0.3}",
                                "{k: 2, suppression_limit: 0, metric: discernibility}",
                                "{k: 4, suppression_limit: 0.5, metric: discernibility}"]),
       by_person=st.booleans())
def test_when_a_table_is_anonymised_on_a_cluster_then_everything_but_the_seconds_is_local(
    rows: list[tuple[Any, ...]], data: st.DataObject, privacy: str, by_person: bool,
    dask_runner: DaskRunner, tmp_path_factory: pytest.TempPathFactory,
) -> None:
    _compare_engines(rows, data, privacy, by_person, tmp_path_factory.mktemp("a"),
                     runner=dask_runner, report=_report)


def _compare_engines(rows: list[tuple[Any, ...]], data: st.DataObject, privacy: str,
                     by_person: bool, tmp: Path, *, runner: Runner,
                     report: Callable[[Any], dict[str, Any]], **options: Any) -> None:
    """The local engine on the table, and ``anonymise_parts`` on it cut into partitions:
    the same refusal, or the same released table and ``report`` figures."""
    frame = _frame(rows)
    text = POLICY.replace("{PRIVACY}", privacy)
    if "l:" not in privacy and data.draw(st.booleans()):  # no sensitive column: keyed counting
        text = text.replace("diagnosis: {action: keep, sensitive: true}", "diagnosis: {action: keep}")
    policy = parse_policy(text)
    keyring = Keyring.load(EXAMPLE_KEYRING)
    person = "person" if by_person else None
    cuts = data.draw(st.lists(st.integers(0, len(rows)), max_size=3))
    parts = _parts(frame, tmp / "in", cuts, group=data.draw(st.integers(1, 20)))
    try:
        local = anonymise(frame, policy, keyring=keyring, person_column=person)
    except PseudogateError as exc:  # no acceptable transformation: the same refusal
        with pytest.raises(type(exc), match=re.escape(str(exc))):
            anonymise_parts(find_inputs(parts), tmp / "out", policy, runner=runner,
                            keyring=keyring, person_column=person, **options)
        assert not (tmp / "out").exists()
        return
    done = anonymise_parts(find_inputs(parts), tmp / "out", policy, runner=runner,
                           keyring=keyring, person_column=person, **options)
    assert report(done.report) == report(local.report)
    got = pq.read_table(sorted((tmp / "out").glob("*.parquet"))).to_pandas()
    pd.testing.assert_frame_equal(got.astype(object), local.table.reset_index(drop=True),
                                  check_dtype=False)


def _cli(*argv: str) -> int:
    return main(list(argv))


def test_when_partitions_hold_invalid_values_then_the_error_is_the_local_engines(
    tmp_path: Path, scheduler: str, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [(i, "1958-11-02", POSTCODES[i % 5], i % 12 + 1, "F", "flu") for i in range(40)]
    frame = _frame(rows)
    frame.loc[5, "nhs"] = "12345"
    frame.loc[17, "dob"] = "1958-13-45"
    frame.loc[33, "dob"] = "1958-13-45"
    frame.loc[33, "nhs"] = ""
    frame.loc[38, "postcode"] = "nonsense"
    (tmp_path / "p.yaml").write_text(POLICY.replace("{PRIVACY}", "{k: 2, suppression_limit: 0}"))
    frame.to_csv(tmp_path / "in.csv", index=False)
    parts = _parts(frame, tmp_path / "parts", [10, 30], group=4)
    common = ["anonymise", "--policy", str(tmp_path / "p.yaml"), "--keyring",
              str(EXAMPLE_KEYRING), "--report", str(tmp_path / "r.json")]
    assert _cli(*common, "--input", str(tmp_path / "in.csv"), "--output",
                str(tmp_path / "l.csv")) == 2
    local_err = capsys.readouterr().err
    assert "row 6" in local_err and "row 39" in local_err
    assert _cli(*common, "--input", str(parts), "--output", str(tmp_path / "d"),
                "--engine", "dask", "--scheduler", scheduler) == 2
    assert capsys.readouterr().err == local_err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "p.yaml", "parts"]


@pytest.mark.parametrize(("k", "limit", "metric"), [(5, "0.05", "loss"),
                                                     (2, "0", "discernibility")])
def test_when_adult_is_anonymised_on_a_cluster_then_output_and_report_are_the_local_ones(
    k: int, limit: str, metric: str, tmp_path: Path, scheduler: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if not (ADULT / "adult.csv").is_file():
        pytest.skip("shared Adult data set is absent")
    for f in ADULT.glob("adult_hierarchy_*.csv"):
        (tmp_path / f.name).write_bytes(f.read_bytes())
    (tmp_path / "p.yaml").write_text(adult_policy_text(k=k, limit=limit, metric=metric))
    common = ["anonymise", "--policy", str(tmp_path / "p.yaml"), "--delimiter", ";"]
    src = str(ADULT / "adult.csv")
    assert _cli(*common, "--input", src, "--output", str(tmp_path / "l.csv"),
                "--report", str(tmp_path / "l.json")) == 0
    assert _cli(*common, "--input", src, "--output", str(tmp_path / "d.csv"),
                "--report", str(tmp_path / "d.json"), "--html", str(tmp_path / "d.html"),
                "--engine", "dask", "--scheduler", scheduler) == 0
    assert (tmp_path / "d.csv").read_bytes() == (tmp_path / "l.csv").read_bytes()
    local, dask = (json.loads((tmp_path / n).read_text()) for n in ("l.json", "d.json"))
    local["search"].pop("seconds")
    dask["search"].pop("seconds")
    assert dask == local
    # The same rows as Parquet partitions: the same released rows.
    table = pd.read_csv(src, sep=";", dtype=str, keep_default_na=False)
    (tmp_path / "parts").mkdir()
    for i, start in enumerate(range(0, len(table), 7_000)):
        pq.write_table(pa.Table.from_pandas(table.iloc[start : start + 7_000],
                                            preserve_index=False),
                       tmp_path / "parts" / f"{i:03d}.parquet", row_group_size=2_500)
    assert _cli(*common, "--input", str(tmp_path / "parts"), "--output", str(tmp_path / "dp"),
                "--report", str(tmp_path / "dp.json"), "--engine", "dask",
                "--scheduler", scheduler) == 0
    released = pq.read_table(sorted((tmp_path / "dp").glob("*.parquet"))).to_pandas()
    expected = pd.read_csv(tmp_path / "l.csv", sep=";", dtype=str, keep_default_na=False)
    pd.testing.assert_frame_equal(released, expected, check_dtype=False)
    capsys.readouterr()


def test_when_the_local_engine_is_given_parquet_partitions_then_it_releases_what_it_does_for_csv(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [(i % 9, ["1958-11-02", "1961-03-01"][i % 2], POSTCODES[i % 5], i % 12 + 1,
             "FM"[i % 2], "flu") for i in range(50)]
    parts, common = small_job(tmp_path, rows, privacy="{k: 2, suppression_limit: 0.2}",
                              cuts=[7, 31], group=5)
    assert _cli(*common, "--input", str(tmp_path / "in.csv"), "--output",
                str(tmp_path / "l.csv"), "--report", str(tmp_path / "l.json")) == 0
    assert _cli(*common, "--input", str(parts), "--output", str(tmp_path / "p.csv"),
                "--report", str(tmp_path / "p.json"), "--html", str(tmp_path / "p.html")) == 0
    assert (tmp_path / "p.csv").read_bytes() == (tmp_path / "l.csv").read_bytes()
    local, batch = (json.loads((tmp_path / n).read_text()) for n in ("l.json", "p.json"))
    local["search"].pop("seconds")
    batch["search"].pop("seconds")
    assert batch == local and (tmp_path / "p.html").is_file()
    capsys.readouterr()


def _report_but_the_work(report: Any) -> dict[str, Any]:
    got = _report(report)
    got["search"].pop("evaluated")  # how many nodes each search evaluated: its own work
    return got


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(rows=st.lists(row_strategy, min_size=1, max_size=80), data=st.data(),
       privacy=st.sampled_from(["{k: 2, suppression_limit: 0.1}",
                                "{k: 3, l: 2, suppression_limit: 0.3}",
                                "{k: 2, suppression_limit: 0, metric: discernibility}",
                                "{k: 4, suppression_limit: 0.5, metric: discernibility}",
                                "{k: 3, suppression_limit: 0.2}"]),
       by_person=st.booleans(), client_classes=st.integers(1, 40))
def test_when_the_table_is_too_large_for_the_client_then_the_split_search_is_the_local_one(
    rows: list[tuple[Any, ...]], data: st.DataObject, privacy: str, by_person: bool,
    client_classes: int, tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """A client that may hold only ``client_classes`` rows: the search starts from a floor and
    evaluates the lower transformations on the partitions (here in process: the same code)."""
    _compare_engines(rows, data, privacy, by_person, tmp_path_factory.mktemp("f"),
                     runner=InProcess(), report=_report_but_the_work,
                     client_classes=client_classes)


@pytest.mark.parametrize(("on_cluster", "k", "limit", "metric", "client_classes"),
                         [(False, 5, "0.05", "loss", 2_000), (False, 10, "0.01", "loss", 300),
                          (True, 2, "0", "discernibility", 5_000)])
def test_when_adult_is_too_large_for_the_client_then_the_cluster_finds_the_local_answer(
    on_cluster: bool, k: int, limit: str, metric: str, client_classes: int, tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    """One case on the shared LocalCluster (the shuffles as Dask tasks), the others in
    process (the same functions, a few seconds instead of a minute)."""
    if not (ADULT / "adult.csv").is_file():
        pytest.skip("shared Adult data set is absent")
    for f in ADULT.glob("adult_hierarchy_*.csv"):
        (tmp_path / f.name).write_bytes(f.read_bytes())
    (tmp_path / "p.yaml").write_text(adult_policy_text(k=k, limit=limit, metric=metric))
    policy = load_policy(tmp_path / "p.yaml")
    table = pd.read_csv(ADULT / "adult.csv", sep=";", dtype=str, keep_default_na=False)
    (tmp_path / "parts").mkdir()
    for i, start in enumerate(range(0, len(table), 5_000)):
        pq.write_table(pa.Table.from_pandas(table.iloc[start : start + 5_000],
                                            preserve_index=False),
                       tmp_path / "parts" / f"{i:03d}.parquet")
    local = anonymise(table, policy)
    runner = request.getfixturevalue("dask_runner") if on_cluster else InProcess()
    done = anonymise_parts(find_inputs(tmp_path / "parts"), tmp_path / "out", policy,
                           runner=runner, client_classes=client_classes)
    assert _report_but_the_work(done.report) == _report_but_the_work(local.report)
    got = pq.read_table(sorted((tmp_path / "out").glob("*.parquet"))).to_pandas()
    pd.testing.assert_frame_equal(got.astype(object), local.table.reset_index(drop=True),
                                  check_dtype=False)


def test_when_the_cli_is_given_a_client_limit_then_it_splits_the_search_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [(i % 23, ["1958-11-02", "1961-03-01", "1970-01-31"][i % 3], POSTCODES[i % 5],
             i % 12 + 1, "FM"[i % 2], "flu") for i in range(120)]
    parts, common = small_job(tmp_path, rows, privacy="{k: 2, suppression_limit: 0.1}",
                              cuts=[40, 80], group=16)
    assert _cli(*common, "--input", str(tmp_path / "in.csv"), "--output",
                str(tmp_path / "l.csv"), "--report", str(tmp_path / "l.json")) == 0
    assert _cli(*common, "--input", str(tmp_path / "in.csv"), "--output",
                str(tmp_path / "x.csv"), "--report", str(tmp_path / "x.json"),
                "--client-classes", "5") == 2
    assert "--client-classes applies to partitioned runs" in capsys.readouterr().err
    assert _cli(*common, "--input", str(parts), "--output", str(tmp_path / "x.csv"),
                "--report", str(tmp_path / "x.json"), "--client-classes", "0") == 2
    assert "--client-classes must be at least 1" in capsys.readouterr().err
    assert _cli(*common, "--input", str(parts), "--output", str(tmp_path / "p.csv"),
                "--report", str(tmp_path / "p.json"), "--client-classes", "4") == 0
    err = capsys.readouterr().err
    assert "more than this process searches itself (4)" in err and "below the floor" in err
    assert (tmp_path / "p.csv").read_bytes() == (tmp_path / "l.csv").read_bytes()
    local, split = (json.loads((tmp_path / n).read_text()) for n in ("l.json", "p.json"))
    for report in (local, split):
        report["search"].pop("seconds")
        report["search"].pop("evaluated")
    assert split == local
    assert not (tmp_path / "x.csv").exists()


def test_when_the_split_search_runs_then_no_raw_value_reaches_its_messages_or_outputs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The floor search's progress lines, its report and its released rows hold no NHS number
    and no dropped name, even with a row error on the way (the error names rows only)."""
    rows = [(i % 23, ["1958-11-02", "1961-03-01", "1970-01-31"][i % 3], POSTCODES[i % 5],
             i % 12 + 1, "FM"[i % 2], "flu") for i in range(120)]
    frame = _frame(rows)
    frame["name"] = [f"Forename{i:04d} Surname" for i in range(len(frame))]
    raw = set(frame["nhs"]) | set(frame["name"])
    _, common = small_job(tmp_path, rows, privacy="{k: 2, suppression_limit: 0.1}",
                          cuts=[40, 80], group=16)
    parts = _parts(frame, tmp_path / "named", [40, 80], group=16)
    assert _cli(*common, "--input", str(parts), "--output", str(tmp_path / "out"),
                "--report", str(tmp_path / "r.json"), "--html", str(tmp_path / "r.html"),
                "--client-classes", "4") == 0
    said = capsys.readouterr()
    assert "below the floor" in said.err
    bad = frame.copy()
    bad.loc[57, "nhs"] = "9434765918"  # a wrong check digit: a row error
    raw.add("9434765918")
    (tmp_path / "bad").mkdir()
    bad_parts = _parts(bad, tmp_path / "bad" / "parts", [40, 80], group=16)
    assert _cli(*common, "--input", str(bad_parts), "--output", str(tmp_path / "bad" / "out"),
                "--report", str(tmp_path / "bad" / "r.json"), "--client-classes", "4") == 2
    failed = capsys.readouterr()
    assert "row 58" in failed.err
    texts = [said.out, said.err, failed.out, failed.err]
    for path in [tmp_path / "out", tmp_path / "r.json", tmp_path / "r.html"]:
        files = sorted(path.rglob("*")) if path.is_dir() else [path]
        texts += [f.read_bytes().decode("utf-8", "replace") for f in files if f.is_file()]
    texts += [pq.read_table(f).to_pandas().to_csv()
              for f in (tmp_path / "out").glob("*.parquet")]
    assert texts and not [v for v in raw for text in texts if v in text]
