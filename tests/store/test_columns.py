"""The fast column paths agree with the reference functions they replace."""

from __future__ import annotations

import base64

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from pseudogate.core.columns import normalise_array, tokenise_column
from pseudogate.core.keyring import Keyring
from pseudogate.core.manifest import content_sha256
from pseudogate.core.normalise import Kind, normalise_many
from pseudogate.core.tokens import _b32_lower
from pseudogate.gateway import table_content_sha256
from pseudogate.gateway.join import left_join

from .helpers import keyring_document

KEYRING = Keyring.from_document(keyring_document())
TOKENISER = KEYRING.linkage_tokeniser("person")

nhs_like = st.one_of(
    st.from_regex(r"\A[0-9]{10}\Z"),
    st.from_regex(r"\A9{3}[ -]?[0-9]{3}[ -]?[0-9]{4}\Z"),
    st.text(alphabet="0123456789 -x\u00a0", max_size=14),
    st.sampled_from(["", "4010232137", "401 023 2137", "4010232138"]),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(nhs_like, max_size=40))
def test_nhs_fast_path_matches_normalise_many(values: list[str]) -> None:
    normalised, errors = normalise_array(Kind.NHS_NUMBER, pa.array(values, type=pa.string()))
    assert (normalised.to_pylist(), errors) == normalise_many(Kind.NHS_NUMBER, values)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(nhs_like, st.sampled_from(["4010232137", "401-023-2137"])), max_size=40))
def test_tokenise_column_matches_value_by_value_tokenisation(values: list[str]) -> None:
    done = tokenise_column(pa.array(values, type=pa.string()), kind=Kind.NHS_NUMBER,
                           tokeniser=TOKENISER)
    tokens, errors = done.tokens, done.errors
    normalised, expected_errors = normalise_many(Kind.NHS_NUMBER, values)
    expected = [TOKENISER.token(v) if v is not None else "" for v in normalised]
    assert tokens.to_pylist() == expected
    reasons = {i: str(r) for i, r in expected_errors}
    assert {i: r for i, r in errors} == {i: ("empty" if values[i] == "" else reasons[i])
                                         for i in reasons}


@settings(max_examples=50, deadline=None)
@given(st.binary(min_size=0, max_size=200).map(lambda b: b[: len(b) - len(b) % 5]))
def test_vectorised_base32_matches_the_standard_library(data: bytes) -> None:
    assert _b32_lower(data) == base64.b32encode(data).decode("ascii").lower()


cells = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=6)


@settings(max_examples=150, deadline=None)
@given(st.integers(min_value=1, max_value=4).flatmap(
    lambda width: st.lists(st.lists(cells, min_size=width, max_size=width), max_size=25)
    .map(lambda rows: (width, rows))))
def test_column_wise_content_hash_matches_the_manifest_definition(shape: tuple) -> None:
    width, rows = shape
    header = [f"c{i}" if i else "person \"ü\"" for i in range(width)]
    table = pa.table({h: pa.array([r[i] for r in rows], type=pa.string())
                      for i, h in enumerate(header)})
    assert table_content_sha256(table) == content_sha256(header, rows)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from("abcde"), max_size=15), st.lists(st.sampled_from("abcdf"), max_size=15))
def test_left_join_matches_a_nested_loop(left: list[str], right: list[str]) -> None:
    left_idx, right_idx = left_join(pa.array(left, pa.string()), pa.array(right, pa.string()))
    expected: list[tuple[int, int | None]] = []
    for i, key in enumerate(left):
        matches = [j for j, other in enumerate(right) if other == key]
        expected.extend((i, j) for j in matches) if matches else expected.append((i, None))
    assert list(zip(left_idx.tolist(), right_idx.to_pylist(), strict=True)) == expected
