"""The one NHS check-digit rule: scalar, vectorised and the C accelerator agree."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from pseudogate.core import nhs
from pseudogate.core._accel import fastmac
from pseudogate.core.normalise import Kind, normalise_many

ten_digits = st.text(alphabet="0123456789", min_size=10, max_size=10)


def test_when_published_examples_are_checked_then_the_rule_agrees() -> None:
    # 943 476 5919 is the NHS Data Dictionary's example; 401 023 2137 a commonly cited valid one.
    assert nhs.is_valid_nhs_number("943 476 5919")
    assert nhs.is_valid_nhs_number("4010232137")
    assert not nhs.is_valid_nhs_number("943 476 5910")
    assert nhs.check_digit("943476591") == 9
    # A remainder of 10 means no number with these nine digits is valid.
    assert nhs.check_digit("000000006") is None  # 6 x 2 = 12, remainder 1


@given(ten_digits)
def test_when_any_ten_digits_are_checked_then_scalar_and_vectorised_rules_agree(digits: str) -> None:
    matrix = np.frombuffer(digits.encode("ascii"), dtype=np.uint8).reshape(1, 10).astype(np.int64)
    assert bool(nhs.valid_check_digits(matrix - 48)[0]) == nhs.has_valid_check_digit(digits)


@given(st.lists(ten_digits, min_size=1, max_size=30))
def test_when_numbers_are_normalised_then_the_check_digit_rule_decides_validity(
    values: list[str],
) -> None:
    out, _errors = normalise_many(Kind.NHS_NUMBER, values)
    assert [o is not None for o in out] == [nhs.has_valid_check_digit(v) for v in values]
    if fastmac is not None:  # the C copy of the rule agrees too
        fast, _ = fastmac.nhs_normalise(values)
        assert [f is not None for f in fast] == [nhs.has_valid_check_digit(v) for v in values]


@given(st.text(alphabet=nhs.SEPARATORS, max_size=3), ten_digits)
def test_when_separators_surround_a_number_then_they_are_ignored(sep: str, digits: str) -> None:
    spaced = sep + digits[:3] + sep + digits[3:] + sep
    assert nhs.is_valid_nhs_number(spaced) == nhs.has_valid_check_digit(digits)
