"""``anonymise`` reads and writes CSV through Arrow exactly as it did through pandas."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pseudogate.cli import anonymise as anonymise_cli
from pseudogate.core import csv_io

PIECES = ["a", "0", " ", "é", ",", ";", "\t", '"', "\n", "\r", "\r\n"]
CELLS = st.lists(st.sampled_from(PIECES), max_size=5).map("".join)


def _pandas_read(path: Path, delimiter: str) -> pd.DataFrame | str:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return pd.read_csv(path, sep=delimiter, dtype=str, keep_default_na=False,
                               na_filter=False, encoding="utf-8-sig", engine="c")
    except Exception as exc:  # noqa: BLE001 - any refusal counts as a refusal
        return type(exc).__name__


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.lists(st.sampled_from(PIECES), max_size=30).map("".join),
       delimiter=st.sampled_from([",", ";", "\t", " "]), bom=st.booleans())
def test_when_arrow_reads_a_file_then_the_table_equals_what_pandas_reads(
    tmp_path: Path, body: str, delimiter: str, bom: bool
) -> None:
    path = tmp_path / "in.csv"
    path.write_text(("\ufeff" if bom else "") + f"c0{delimiter}c1\n" + body, encoding="utf-8",
                    newline="")
    try:
        table = anonymise_cli._read_with_arrow(path, header=["c0", "c1"], delimiter=delimiter)
    except csv_io.NotPlain:
        return  # pandas reads it, as before
    expected = _pandas_read(path, delimiter)
    assert isinstance(expected, pd.DataFrame), expected
    assert list(table.columns) == list(expected.columns)
    assert table.values.tolist() == expected.values.tolist()


def test_when_a_file_is_well_formed_then_arrow_reads_it(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text('\ufeffnhs;name;notes\r\n0012;"Smith; Ann";"said ""hi""\n twice"\r\n'
                    "9434765919;Zoë;\r\n", encoding="utf-8", newline="")
    table = anonymise_cli._read_with_arrow(path, header=["nhs", "name", "notes"], delimiter=";")
    assert table.values.tolist() == [["0012", "Smith; Ann", 'said "hi"\n twice'],
                                     ["9434765919", "Zoë", ""]]
    assert table.equals(_pandas_read(path, ";"))


@pytest.mark.parametrize(
    "body",
    ["1,x\n\n2,y\n", '1,"open\n', "1,x\r2,y\n", '1,a"b\n2,"c\n', "1,x,3\n", "1\n"],
    ids=["blank line", "open quote", "lone CR", "stray then open quote", "too many", "too few"],
)
def test_when_pandas_reads_a_file_its_own_way_then_arrow_hands_it_over(
    tmp_path: Path, body: str
) -> None:
    path = tmp_path / "in.csv"
    path.write_text("c0,c1\n" + body, encoding="utf-8", newline="")
    with pytest.raises(csv_io.NotPlain):
        anonymise_cli._read_with_arrow(path, header=["c0", "c1"], delimiter=",")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(width=st.integers(1, 3), data=st.data(), delimiter=st.sampled_from([",", ";", "\t", " "]))
def test_when_the_table_is_written_then_bytes_equal_pandas_to_csv(
    tmp_path: Path, width: int, data: st.DataObject, delimiter: str
) -> None:
    rows = data.draw(st.lists(st.lists(CELLS, min_size=width, max_size=width), max_size=6))
    table = pd.DataFrame(rows, columns=[f"c {i}" for i in range(width)], dtype=object)
    anonymise_cli._write_table(table, tmp_path / "arrow.csv", delimiter=delimiter)
    buffer = io.StringIO(newline="")
    table.to_csv(buffer, sep=delimiter, index=False, lineterminator="\n")
    assert (tmp_path / "arrow.csv").read_bytes() == buffer.getvalue().encode("utf-8")


def test_when_a_cell_is_not_text_then_pandas_writes_the_table(tmp_path: Path) -> None:
    table = pd.DataFrame({"a": ["x", None], "b": [1, 2]}, dtype=object)
    anonymise_cli._write_table(table, tmp_path / "out.csv", delimiter=",")
    assert (tmp_path / "out.csv").read_text() == "a,b\nx,1\n,2\n"
