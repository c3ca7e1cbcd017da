"""The CLI run on small files: outputs, delimiter, HTML, policy check, and failures that write nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from pycanon import anonymity as canon

from pseudogate.cli import main

POLICY = """\
version: 1
name: small
columns:
  nhs: {action: tokenise, kind: nhs_number}
  name: {action: drop}
  age: {action: generalise, hierarchy: {type: interval, widths: [5, 10]}}
  sex: {action: generalise, hierarchy: {type: suppress}}
  edu: {action: generalise, hierarchy: {type: tree, file: h/edu.csv}}
  diagnosis: {action: keep, sensitive: true}
privacy: {k: 2, l: 2, suppression_limit: 0.25, metric: loss}
"""
EDU = "primary;school;*\nsecondary;school;*\nbachelor;higher;*\nmaster;higher;*\n"
ROWS = [
    ("9434765919", "Ann", "31", "F", "primary", "flu"),
    ("9434765870", "Bob", "33", "M", "secondary", "cold"),
    ("4010232137", "Cy", "38", "F", "bachelor", "flu"),
    ("9434765862", "Di", "36", "M", "master", "gout"),
    ("9990000026", "Ed", "52", "F", "master", "flu"),
    ("9990000018", "Flo", "47", "M", "primary", "cold"),
    ("9990000034", "Gus", "30", "F", "secondary", "gout"),
    ("9990000042", "Hal", "34", "M", "bachelor", "cold"),
]
CLI = (sys.executable, "-c", "import sys; from pseudogate.cli import main; sys.exit(main())")
HEADER = ("nhs", "name", "age", "sex", "edu", "diagnosis")


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "h").mkdir()
    (tmp_path / "h" / "edu.csv").write_text(EDU)
    (tmp_path / "policy.yaml").write_text(POLICY)
    _write(tmp_path / "in.csv", ROWS, ",")
    return tmp_path


def _write(path: Path, rows: list[tuple[str, ...]], sep: str) -> None:
    path.write_text("\n".join(sep.join(r) for r in [HEADER, *rows]) + "\n")


def _args(d: Path, *extra: str, input_name: str = "in.csv") -> list[str]:
    return ["anonymise", "--policy", str(d / "policy.yaml"), "--input", str(d / input_name),
            "--output", str(d / "out.csv"), "--report", str(d / "r.json"), *extra]


def _no_outputs(d: Path) -> None:
    leftovers = [p.name for p in d.iterdir() if p.name.startswith(("out", "r.", ".out", ".r."))]
    assert leftovers == []


def test_when_input_is_good_then_outputs_are_written_and_consistent(
    files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_args(files, "--html", str(files / "r.html"))) == 0
    err = capsys.readouterr().err
    assert "EXAMPLE keyring" in err
    out = pd.read_csv(files / "out.csv", dtype=str, keep_default_na=False)
    report = json.loads((files / "r.json").read_text())
    assert list(out.columns) == ["nhs", "age", "sex", "edu", "diagnosis"]
    assert len(out) == report["rows_out"] == 8 - report["suppressed"]
    qis = ["age", "sex", "edu"]
    assert canon.k_anonymity(out, qis) == report["k_achieved"] >= 2
    assert canon.l_diversity(out, qis, ["diagnosis"]) == report["l_achieved"] >= 2
    written = (files / "out.csv").read_text() + (files / "r.json").read_text()
    written += (files / "r.html").read_text()
    for nhs, name, *_ in ROWS:
        assert nhs not in written and name not in written
    html = (files / "r.html").read_text()
    assert "<svg" in html and "<script" not in html and "http://" not in html.replace(
        'xmlns="http://www.w3.org/2000/svg"', "")


def test_when_delimiter_is_semicolon_then_output_uses_it(files: Path) -> None:
    _write(files / "semi.csv", ROWS, ";")
    assert main(_args(files, "--delimiter", ";", input_name="semi.csv")) == 0
    header = (files / "out.csv").read_text().splitlines()[0]
    assert header == "nhs;age;sex;edu;diagnosis"


def test_when_delimiter_is_wrong_then_exit_2_with_hint_and_no_output(
    files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write(files / "semi.csv", ROWS, ";")
    assert main(_args(files, input_name="semi.csv")) == 2
    assert "--delimiter" in capsys.readouterr().err
    _no_outputs(files)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda rows: [("9434765918", *rows[0][1:]), *rows[1:]], "row 1, column 'nhs'"),
        (lambda rows: [rows[0], ("9434765870", "Bob", "old", *rows[1][3:]), *rows[2:]],
         "row 2, column 'age': not_an_integer"),
        (lambda rows: [*rows[:-1], (*rows[-1][:4], "phd", rows[-1][5])],
         "row 8, column 'edu': not_in_hierarchy"),
    ],
)
def test_when_a_value_is_invalid_then_exit_2_no_output_and_no_value_echoed(
    files: Path, capsys: pytest.CaptureFixture[str], mutate, expected: str
) -> None:
    rows = mutate(list(ROWS))
    _write(files / "in.csv", rows, ",")
    assert main(_args(files)) == 2
    err = capsys.readouterr().err
    assert expected in err
    for bad in ("9434765918", "old", "phd"):
        assert bad not in err
    _no_outputs(files)


def test_when_column_is_not_in_policy_then_exit_2(files: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    text = (files / "in.csv").read_text().splitlines()
    (files / "in.csv").write_text("\n".join([text[0] + ",extra"] + [t + ",x" for t in text[1:]]))
    assert main(_args(files)) == 2
    assert "input column 7 is not named" in capsys.readouterr().err
    _no_outputs(files)


def test_when_no_transformation_is_acceptable_then_exit_2(files: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    (files / "policy.yaml").write_text(POLICY.replace("k: 2", "k: 9"))
    assert main(_args(files)) == 2
    assert "no transformation satisfies" in capsys.readouterr().err
    _no_outputs(files)


def test_when_policy_is_bad_or_input_missing_then_exit_2(files: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    (files / "policy.yaml").write_text(POLICY.replace("type: suppress", "type: blur"))
    assert main(_args(files)) == 2
    assert "line 7" in capsys.readouterr().err
    (files / "policy.yaml").write_text(POLICY)
    assert main(_args(files, input_name="absent.csv")) == 2
    assert "does not exist" in capsys.readouterr().err
    _no_outputs(files)


def test_when_a_row_has_too_many_fields_then_exit_2(files: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    with open(files / "in.csv", "a") as f:
        f.write("9434765919,Ann,31,F,primary,flu,extra\n")
    assert main(_args(files)) == 2
    assert "wrong number of fields" in capsys.readouterr().err
    _no_outputs(files)


def test_policy_check_prints_the_fingerprint(files: Path) -> None:
    done = subprocess.run([*CLI, "policy", "check",
                           str(files / "policy.yaml")], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    from pseudogate.core.policy import load_policy

    assert f"fingerprint: {load_policy(files / 'policy.yaml').fingerprint}" in done.stdout
    (files / "h" / "edu.csv").write_text(EDU + "master;school;*\n")
    bad = subprocess.run([*CLI, "policy", "check",
                          str(files / "policy.yaml")], capture_output=True, text=True, check=False)
    assert bad.returncode == 2 and "two different parents" in bad.stderr


def test_when_the_file_has_no_header_row_then_columns_are_named_by_position_not_by_value(
    files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = ("9434765919", "ann@example.org", "LL15 1AA", "F", "primary", "flu")
    (files / "in.csv").write_text("\n".join(",".join(r) for r in [first, *ROWS]) + "\n")
    assert main(_args(files)) == 2
    out, err = capsys.readouterr()
    assert "input column 1 is not named in policy 'small'" in err
    for value in first[:3]:
        assert value not in out + err
    _no_outputs(files)
