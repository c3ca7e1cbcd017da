"""``pseudogate tokenise``: tokens recomputed independently; invalid files refused without values."""

from __future__ import annotations

import base64
import csv
import io
import json
import logging
from pathlib import Path

import pytest

from pseudogate.cli import main
from pseudogate.cli.tokenise import tokenise_csv
from pseudogate.core.keyring import Keyring
from pseudogate.core.normalise import Kind

from . import independent

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "keys_example" / "keyring.json"
LINK_ID, LINK_B64 = next(
    (k["id"], k["material"])
    for k in json.loads(EXAMPLE.read_text())["keys"]
    if k["purpose"] == "linkage"
)

GOOD = [
    ("1", "943 476 5919", "Siân O'Brien", "a, b"),
    ("2", "401-023-2137", "José", 'say "hi"'),
    ("3", "\t0830166130 ", "Zoë", ""),
]
BAD_VALUES = ["9434765918", "12345", "", "186O913903"]


def write_csv(path: Path, rows: list[tuple[str, ...]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "nhs_number", "name", "notes"])
        w.writerows(rows)
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def tokenise_args(src: Path, dst: Path, *extra: str) -> list[str]:
    return [
        "tokenise",
        "--keyring",
        str(EXAMPLE),
        "--domain",
        "nhs_number",
        "--column",
        "nhs_number",
        "--input",
        str(src),
        "--output",
        str(dst),
        *extra,
    ]


def expected_token(normalised: str, domain: str = "nhs_number") -> str:
    return independent.token(
        key_id=LINK_ID, key=base64.b64decode(LINK_B64), domain=domain, normalised=normalised
    )


def test_valid_file_gets_independently_recomputable_tokens_and_keeps_other_columns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    src, dst = write_csv(tmp_path / "in.csv", GOOD), tmp_path / "out.csv"
    code, out, err = run(capsys, *tokenise_args(src, dst, "--kind", "nhs_number"))
    assert code == 0, err
    assert "WARNING: running on the EXAMPLE keyring" in err
    assert f"3 rows tokenised with key {LINK_ID}" in out
    with open(dst, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["id", "nhs_number", "name", "notes"]
    normalised = ["9434765919", "4010232137", "0830166130"]
    for (rid, _, name, notes), row, n in zip(GOOD, rows[1:], normalised, strict=True):
        assert row == [rid, expected_token(n), name, notes]
    assert "tokenised 3 rows of column 'nhs_number'" in caplog.text
    shown = out + err + caplog.text
    assert [v for v in normalised + [g[1].strip() for g in GOOD] if v in shown] == []
    assert not any(expected_token(n) in shown for n in normalised)


def test_kind_defaults_to_the_built_in_domains_kind(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src, dst = write_csv(tmp_path / "in.csv", GOOD), tmp_path / "out.csv"
    args = tokenise_args(src, dst)
    args[args.index("--column") + 1] = "name"
    args[args.index("--domain") + 1] = "name"
    assert run(capsys, *args)[0] == 0
    with open(dst, newline="", encoding="utf-8") as f:
        names = [row[2] for row in list(csv.reader(f))[1:]]
    assert names == [expected_token(n, "name") for n in ("sian o brien", "jose", "zoe")]


def test_custom_domain_needs_a_kind(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src, dst = write_csv(tmp_path / "in.csv", GOOD), tmp_path / "out.csv"
    args = tokenise_args(src, dst)
    args[args.index("--domain") + 1] = "gp-practice-a"
    code, _, err = run(capsys, *args)
    assert code == 2 and "--kind is required for domain 'gp-practice-a'" in err
    assert not dst.exists()


def test_invalid_rows_exit_2_list_rows_and_reasons_and_leave_no_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    rows = [
        GOOD[0],
        ("2", BAD_VALUES[0], "Ann", ""),
        ("3", BAD_VALUES[1], "Bob", ""),
        GOOD[1],
        ("5", BAD_VALUES[2], "Cy", ""),
        ("6", BAD_VALUES[3], "Di", ""),
    ]
    src, dst = write_csv(tmp_path / "in.csv", rows), tmp_path / "out.csv"
    code, out, err = run(capsys, *tokenise_args(src, dst, "--kind", "nhs_number"))
    assert code == 2
    assert "4 invalid value(s) in column 'nhs_number'" in err
    for expected in (
        "row 2: invalid_check_digit",
        "row 3: bad_format",
        "row 5: empty",
        "row 6: bad_format",
    ):
        assert expected in err
    assert "no output written" in err
    assert not dst.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]  # no temporary left
    everything = out + err + caplog.text
    raw = [v for v in BAD_VALUES if v] + [r[1].strip() for r in GOOD] + ["9434765919"]
    assert [v for v in raw if v in everything] == []


def test_an_invalid_row_in_a_later_chunk_still_leaves_no_output(tmp_path: Path) -> None:
    rows = [(str(i), "943 476 5919", "x", "") for i in range(50)] + [("50", "9434765918", "", "")]
    src, dst = write_csv(tmp_path / "in.csv", rows), tmp_path / "out.csv"
    tokeniser = Keyring.load(EXAMPLE).linkage_tokeniser("nhs_number")
    from pseudogate.core.errors import RowErrors

    with pytest.raises(RowErrors) as info:
        tokenise_csv(
            src, dst, column="nhs_number", kind=Kind.NHS_NUMBER, tokeniser=tokeniser, chunk_rows=7
        )
    assert [(e.row, e.reason) for e in info.value.errors] == [(51, "invalid_check_digit")]
    assert not dst.exists()


def test_rows_with_the_wrong_number_of_fields_are_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "in.csv"
    src.write_text("id,nhs_number,name,notes\n1,943 476 5919,a,b\n2,401 023 2137\n")
    code, _, err = run(capsys, *tokenise_args(src, tmp_path / "out.csv", "--kind", "nhs_number"))
    assert code == 2 and "row 2: wrong_field_count" in err
    assert "401 023 2137" not in err


def test_missing_column_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src, dst = write_csv(tmp_path / "in.csv", GOOD), tmp_path / "out.csv"
    args = tokenise_args(src, dst, "--kind", "nhs_number")
    args[args.index("--column") + 1] = "nhs"
    code, _, err = run(capsys, *args)
    assert code == 2
    assert "column 'nhs' not found" in err and "first row has 4 columns" in err
    assert "nhs_number" not in err  # the header's cells are never echoed: they may be data
    assert not dst.exists()


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_on_a_terminal_shows_counts_not_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src, dst = write_csv(tmp_path / "in.csv", GOOD * 10), tmp_path / "out.csv"
    tty = _Tty()
    monkeypatch.setattr("sys.stderr", tty)
    tokeniser = Keyring.load(EXAMPLE).linkage_tokeniser("nhs_number")
    done = tokenise_csv(
        src, dst, column="nhs_number", kind=Kind.NHS_NUMBER, tokeniser=tokeniser, show_progress=True
    )
    assert done == 30
    shown = tty.getvalue()
    assert "tokenising [" in shown and "30/30" in shown
    assert "943" not in shown


def test_when_the_file_has_no_header_row_then_columns_are_listed_by_position_not_by_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "in.csv"
    first = ["9434765919", "ann@example.org", "LL15 1AA", "1970-01-01"]
    src.write_text(",".join(first) + "\n4010232137,bob@example.org,LS1 4AB,1980-02-03\n")
    code, out, err = run(capsys, *tokenise_args(src, tmp_path / "out.csv"))
    assert code == 2
    assert "column 'nhs_number' not found" in err
    assert "its first row has 4 columns" in err and "not shown" in err
    assert [v for v in first if v in out + err] == []
    assert not (tmp_path / "out.csv").exists()
