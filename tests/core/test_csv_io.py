"""The Arrow CSV path: the same bytes as the ``csv`` module, or a hand-over to it."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pseudogate.cli import tokenise as tokenise_cli
from pseudogate.cli._common import Progress
from pseudogate.core import csv_io
from pseudogate.core.errors import PseudogateError
from pseudogate.core.keyring import Keyring
from pseudogate.core.normalise import Kind, normalise

ROOT = Path(__file__).resolve().parents[2]
TOKENISER = Keyring.load(ROOT / "keys_example" / "keyring.json").linkage_tokeniser("text")
CELLS = st.text(alphabet=st.sampled_from(['a', 'Z', '0', ' ', ',', ';', '"', '\n', '\r', 'é', '\t']),
                max_size=6)


def _csv_module_bytes(rows: list[list[str]], delimiter: str) -> bytes:
    out = io.StringIO(newline="")
    csv.writer(out, delimiter=delimiter, lineterminator="\n").writerows(rows)
    return out.getvalue().encode("utf-8")


@settings(max_examples=300, deadline=None)
@given(width=st.integers(1, 3), data=st.data(), delimiter=st.sampled_from([",", ";", "\t"]))
def test_when_rows_are_written_then_bytes_equal_the_csv_modules(
    width: int, data: st.DataObject, delimiter: str
) -> None:
    rows = data.draw(st.lists(st.lists(CELLS, min_size=width, max_size=width), min_size=1))
    batch = pa.RecordBatch.from_arrays(
        [pa.array([r[i] for r in rows], pa.string()) for i in range(width)],
        names=[f"c{i}" for i in range(width)],
    )
    sink = io.BytesIO()
    csv_io.write_rows(sink, batch, delimiter=delimiter)
    assert sink.getvalue() == _csv_module_bytes(rows, delimiter)


def _both_paths(tmp_path: Path, text: bytes) -> tuple[object, object]:
    """(what tokenise_csv did, what the csv-module path alone did): output bytes or error."""
    src = tmp_path / "in.csv"
    src.write_bytes(text)
    results = []
    for name in ("auto.csv", "python.csv"):
        dst = tmp_path / name
        try:
            if name == "auto.csv":
                tokenise_cli.tokenise_csv(src, dst, column="b", kind=Kind.TEXT,
                                          tokeniser=TOKENISER, block_bytes=32)
            else:
                tokenise_cli._tokenise_python(src, dst, column="b", kind=Kind.TEXT,
                                              tokeniser=TOKENISER, progress=Progress("t"),
                                              chunk_rows=3)
            results.append(dst.read_bytes())
            dst.unlink()
        except PseudogateError as exc:
            results.append(str(exc).replace(str(dst), "OUT"))
            assert not dst.exists()
    return results[0], results[1]


NOISE = st.lists(st.sampled_from(["a", "b1", ",", '"', "\n", "\r", "\r\n", " ", "é"]),
                 max_size=12).map("".join)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(CELLS, CELLS.filter(str.strip), CELLS), max_size=8),
       noise=st.one_of(st.just(""), NOISE), bom=st.booleans(), crlf=st.booleans())
def test_when_any_text_is_tokenised_then_the_result_equals_the_csv_module_paths(
    tmp_path: Path, rows: list[tuple[str, str, str]], noise: str, bom: bool, crlf: bool
) -> None:
    """Well-formed rows as the csv module writes them, sometimes followed by noise."""
    out = io.StringIO(newline="")
    csv.writer(out, lineterminator="\r\n" if crlf else "\n").writerows([("a", "b", "c"), *rows])
    text = ("\ufeff" if bom else "") + out.getvalue() + noise
    auto, python = _both_paths(tmp_path, text.encode("utf-8"))
    assert auto == python


@pytest.fixture
def no_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> int:
        raise AssertionError("the csv-module path ran")

    monkeypatch.setattr(tokenise_cli, "_tokenise_python", refuse)


WELL_FORMED = (
    "\ufeffid,b,notes\r\n"
    '0012,Siân,"a, b"\r\n'
    '2,"José ""J""",\r\n'
    '3,Zoë,"two\nlines"\r\n'
    "4, padded ,;\r\n"
)


def test_when_a_file_is_well_formed_then_arrow_writes_what_the_csv_module_would(
    tmp_path: Path, no_fallback: None
) -> None:
    src, dst = tmp_path / "in.csv", tmp_path / "out.csv"
    src.write_text(WELL_FORMED, encoding="utf-8", newline="")
    assert tokenise_cli.tokenise_csv(src, dst, column="b", kind=Kind.TEXT, tokeniser=TOKENISER,
                                     block_bytes=40) == 4
    rows = list(csv.reader(io.StringIO(WELL_FORMED.removeprefix("\ufeff"), newline="")))
    for row in rows[1:]:
        row[1] = TOKENISER.token(normalise(Kind.TEXT, row[1]))
    expected = _csv_module_bytes(rows, ",")
    assert dst.read_bytes() == expected
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "out.csv"]


def test_when_a_line_is_blank_then_its_row_is_reported_as_before(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_text("a,b,c\n1,x,2\n\n3,y,4\n", encoding="utf-8")
    with pytest.raises(PseudogateError, match="row 2: wrong_field_count"):
        tokenise_cli.tokenise_csv(src, tmp_path / "out.csv", column="b", kind=Kind.TEXT,
                                  tokeniser=TOKENISER)
    assert not (tmp_path / "out.csv").exists()


def test_when_an_invalid_value_is_in_a_later_block_then_its_row_is_numbered_in_the_file(
    tmp_path: Path,
) -> None:
    src = tmp_path / "in.csv"
    src.write_text("a,b,c\n" + "1,x,2\n" * 40 + "1,,2\n" + "1,x,2\n" * 5, encoding="utf-8")
    with pytest.raises(PseudogateError) as info:
        tokenise_cli.tokenise_csv(src, tmp_path / "out.csv", column="b", kind=Kind.TEXT,
                                  tokeniser=TOKENISER, block_bytes=32)
    assert "row 41: empty" in str(info.value) and "1 invalid value(s)" in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]


def test_when_arrow_refuses_the_file_then_no_arrow_text_reaches_the_message(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_bytes(b"a,b,c\n1,x,2\n9434765919,y,4,extra\n")
    with pytest.raises(PseudogateError) as info:
        tokenise_cli.tokenise_csv(src, tmp_path / "out.csv", column="b", kind=Kind.TEXT,
                                  tokeniser=TOKENISER)
    assert "row 2: wrong_field_count" in str(info.value)
    assert "9434765919" not in str(info.value) and "extra" not in str(info.value)


def test_when_a_quoted_line_break_straddles_a_block_then_arrow_is_not_trusted(
    tmp_path: Path,
) -> None:
    """Arrow 26 read '0\\r\\n' as '0\\r' when a 32-byte block ended between CR and LF."""
    src = tmp_path / "in.csv"
    src.write_bytes(b'a,b,c\r\n0,00\xc3\xa9,0\r\n0,000\xc3\xa9\xc3\xa9,"0""\xc3\xa9\xc3\xa9"\r\n'
                    b'"00000""",0,"0000,\xc3\xa9"\r\n"0\r\n",0,\r\n')
    with pytest.raises(csv_io.NotPlain):
        list(csv_io.text_batches(src, columns=["a", "b", "c"], block_bytes=32))
    auto, python = _both_paths(tmp_path, src.read_bytes())
    assert auto == python and isinstance(auto, bytes) and b'"0\r\n",' in auto
