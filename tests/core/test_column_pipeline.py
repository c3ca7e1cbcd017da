"""The one column pipeline gives every entry point what tokenising value by value gives."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pseudogate.core import columns
from pseudogate.core.columns import (
    MIN_ROWS_TO_DEDUPLICATE,
    tokenise_column,
    tokenise_list,
    tokenise_series,
)
from pseudogate.core.keyring import EXAMPLE_KEYRING, Keyring
from pseudogate.core.normalise import Kind, normalise_many
from pseudogate.core.tokenisation import Tokenisation, load_domain_config

TOKENISER = Keyring.load(EXAMPLE_KEYRING).linkage_tokeniser("person")

#: Spellings that normalise alike, invalid values of each kind, and cells that are hard to
#: carry (no-break spaces, a lone surrogate, long padding).
POOL = [
    "9434765919", "943 476 5919", "943-476-5919", " 9434765919\t", "943\u00a0476\u00a05919",
    "4010232137", "4010232138", "12345", "", "   ",
    "LL15 1AA", "ll151aa", "SW1A 1AA", "XX1 1XX",
    "2020-02-29", "2021-02-29", "20200229",
    "Siân O'Brien", "SIAN O BRIEN", "Zoë", "Ann\ud800", "\ud800",
    " A@B.org ", "a@b.org", "nope", "a@b@c",
    "x" * 30, " " * 20 + "9434765919",
]
values_lists = st.lists(st.sampled_from(POOL), max_size=60)


def reference(
    kind: Kind, values: Sequence[object], max_chars: int | None = None
) -> tuple[list[str], list[tuple[int, str]]]:
    """Value by value, as the Tokenise RPC did before the pipeline."""
    normalised, reasons = normalise_many(kind, values)  # type: ignore[arg-type]
    errors = dict(reasons)
    for i, v in enumerate(values):
        if max_chars is not None and isinstance(v, str) and len(v) > max_chars and i not in errors:
            errors[i] = "bad_format"  # type: ignore[assignment]
    tokens = ["" if i in errors else TOKENISER.token(n) for i, n in enumerate(normalised)]  # type: ignore[arg-type]
    return tokens, sorted((i, str(r)) for i, r in errors.items())


def both_ways(kind: Kind, values: Sequence[object], **options: object) -> list[object]:
    """The pipeline's result with and without finding distinct values first."""
    out = []
    for deduplicate in (True, False):
        done = columns._tokenise(values, kind=kind, tokeniser=TOKENISER, deduplicate=deduplicate,
                                 **options)  # type: ignore[arg-type]
        out.append((done.as_list(), done.errors))
    return out


@pytest.mark.parametrize("kind", list(Kind))
@settings(max_examples=40, deadline=None)
@given(values=values_lists)
def test_when_a_list_is_tokenised_either_way_then_it_matches_value_by_value(
    kind: Kind, values: list[str]
) -> None:
    expected = reference(kind, values, max_chars=25)
    assert both_ways(kind, values, max_chars=25) == [expected, expected]


@pytest.mark.parametrize("kind", list(Kind))
@settings(max_examples=30, deadline=None)
@given(values=st.lists(st.sampled_from([v for v in POOL if "\ud800" not in v]), max_size=60))
def test_when_an_arrow_column_is_tokenised_either_way_then_it_matches_value_by_value(
    kind: Kind, values: list[str]
) -> None:
    tokens, errors = reference(kind, values)
    array = pa.array(values, type=pa.string())
    for deduplicate in (True, False):
        done = columns._tokenise(array, kind=kind, tokeniser=TOKENISER, deduplicate=deduplicate)
        assert (done.as_arrow().to_pylist(), done.errors) == (tokens, errors)
    assert tokenise_column(array, kind=kind, tokeniser=TOKENISER).tokens.to_pylist() == tokens


@pytest.mark.parametrize("kind", list(Kind))
def test_when_arrow_cells_are_null_or_empty_then_they_are_empty_for_every_kind(kind: Kind) -> None:
    done = tokenise_column(pa.chunked_array([["", None], [None, "x" * 3]], type=pa.string()),
                           kind=kind, tokeniser=TOKENISER)
    assert done.tokens.to_pylist()[:3] == ["", "", ""]
    assert done.errors[:3] == [(0, "empty"), (1, "empty"), (2, "empty")]


def test_when_a_list_holds_cells_that_are_not_text_then_they_are_not_text_either_way() -> None:
    values: list[object] = ["9434765919", None, b"9434765919", 9434765919, ["x"], "9434765919"]
    values = values * (MIN_ROWS_TO_DEDUPLICATE // len(values) + 1)
    expected = reference(Kind.NHS_NUMBER, values)
    assert expected[1][:4] == [(1, "not_text"), (2, "not_text"), (3, "not_text"), (4, "not_text")]
    assert both_ways(Kind.NHS_NUMBER, values) == [expected, expected]
    done = tokenise_list(values, kind=Kind.NHS_NUMBER, tokeniser=TOKENISER)  # type: ignore[arg-type]
    assert (done.tokens, done.errors) == expected


def test_when_a_repeated_name_holds_a_lone_surrogate_then_it_still_gets_its_token() -> None:
    values = ["Ann\ud800", "Ann"] * MIN_ROWS_TO_DEDUPLICATE  # Arrow cannot hold it: no Arrow path
    done = tokenise_list(values, kind=Kind.NAME, tokeniser=TOKENISER)
    assert done.errors == []
    assert set(done.tokens) == {TOKENISER.token("ann")}


def test_when_a_value_is_too_long_then_it_is_bad_format_unless_already_invalid() -> None:
    values = [" " * 10 + "9434765919", "x" * 30, "9434765919", "", " " * 20]
    done = tokenise_list(values, kind=Kind.NHS_NUMBER, tokeniser=TOKENISER, max_chars=12)
    assert done.errors == [(0, "bad_format"), (1, "bad_format"), (3, "empty"), (4, "empty")]
    assert done.tokens == ["", "", TOKENISER.token("9434765919"), "", ""]


@settings(max_examples=30, deadline=None)
@given(values=values_lists)
def test_when_a_series_is_tokenised_then_it_matches_the_list(values: list[str]) -> None:
    series = pd.Series(values, dtype=object)
    done = tokenise_series(series, kind=Kind.NAME, tokeniser=TOKENISER)
    as_list = tokenise_list(values, kind=Kind.NAME, tokeniser=TOKENISER)
    assert isinstance(done.tokens, np.ndarray) and done.tokens.dtype == object
    assert (done.tokens.tolist(), done.errors) == (as_list.tokens, as_list.errors)


def test_when_the_accelerator_is_absent_then_arrow_nhs_numbers_take_the_vectorised_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    values = [v for v in POOL if "\ud800" not in v] * 3
    expected = reference(Kind.NHS_NUMBER, values)
    monkeypatch.setattr(columns, "fastmac", None)
    done = tokenise_column(pa.array(values, pa.string()), kind=Kind.NHS_NUMBER,
                           tokeniser=TOKENISER)
    assert (done.tokens.to_pylist(), done.errors) == expected


@pytest.mark.parametrize(
    ("values", "arrow_pays", "python_pays"),
    [
        ([f"{i:010d}" for i in range(50_000)], False, False),  # every value distinct
        ([f"{i % 36_000:010d}" for i in range(50_000)], True, False),  # 28 in 100 rows repeat
        ([f"{i % 20_000:010d}" for i in range(50_000)], True, True),  # three fifths
        (["9434765919"] * (MIN_ROWS_TO_DEDUPLICATE - 1), False, False),  # too few rows to pay
    ],
)
def test_when_a_sample_shows_enough_repeats_then_distinct_values_are_found_first(
    values: list[str], arrow_pays: bool, python_pays: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(columns, "fastmac", object())  # as with the C accelerator built
    for column in (values, sorted(values)):  # sorted files look alike
        assert columns._repeats_pay(pa.array(column, pa.string())) is arrow_pays
        assert columns._repeats_pay(column) is python_pays
    monkeypatch.setattr(columns, "fastmac", None)  # pure Python: tokens cost ten times as much
    assert columns._repeats_pay(values) is (len(values) >= MIN_ROWS_TO_DEDUPLICATE and
                                            len(set(values)) < len(values))


def test_when_the_tokenise_rpc_core_runs_then_it_reports_the_pipeline_result() -> None:
    core = Tokenisation(keyring=Keyring.load(EXAMPLE_KEYRING), config=load_domain_config(None))
    values = ["943 476 5919", "", "943 476 5910", "9434765919", " " * 1_100 + "9434765919"]
    result = core.tokenise("person", values)
    assert result.key_id == TOKENISER.key_id
    assert result.errors == [(1, "empty"), (2, "invalid_check_digit"), (4, "bad_format")]
    assert result.tokens == [TOKENISER.token("9434765919"), "", "", TOKENISER.token("9434765919"),
                             ""]


def test_when_rows_repeat_then_each_distinct_valid_spelling_is_tokenised_once() -> None:
    made: list[int] = []

    class Counting:
        def tokens(self, values: list[str]) -> list[str]:
            made.append(len(values))
            return TOKENISER.tokens(values)

    values = ["9434765919", "943 476 5919", "12345"] * 1_000
    done = tokenise_list(values, kind=Kind.NHS_NUMBER, tokeniser=Counting())  # type: ignore[arg-type]
    assert made == [2]  # two spellings of one number; never the invalid value
    assert done.errors == [(i, "bad_format") for i in range(2, 3_000, 3)]
    assert set(done.tokens[0::3]) == set(done.tokens[1::3]) == {TOKENISER.token("9434765919")}
