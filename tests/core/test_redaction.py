"""Messages never carry a direct identifier: redact() and shown() (issue 14, "no value in any
error")."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pseudogate.core.errors import InvalidInput, RowError, RowErrors, shown
from pseudogate.core.identifiers import WITHHELD, contains_identifier, redact
from pseudogate.tools.synthetic import nhs_number

NUMBERS = [nhs_number(random.Random(seed)) for seed in range(20)]


@given(st.sampled_from(NUMBERS), st.sampled_from(["", " ", "-"]), st.text(max_size=20),
       st.text(max_size=20))
def test_when_text_holds_an_nhs_number_then_redact_removes_it(
    number: str, sep: str, before: str, after: str
) -> None:
    spelled = f"{number[:3]}{sep}{number[3:6]}{sep}{number[6:]}"
    text = f"{before} {spelled} {after}"
    assert number not in redact(text).replace(" ", "").replace("-", "")


@pytest.mark.parametrize("text", ["LL11 2AB", "ll112ab", "SW1A 1AA", "a.b@example.org"])
def test_when_text_holds_a_postcode_or_email_then_redact_withholds_it(text: str) -> None:
    redacted = redact(f"project {text} is not yours")
    assert redacted == f"project {WITHHELD} is not yours"


@pytest.mark.parametrize(
    "text", ["row 3, column 'nhs_number': invalid_check_digit", "1048576 bytes", "lk1_abc",
             "sha256 0a1b2c3d4e5f", "policy gp-ingest line 4", "1234567890"],
)
def test_when_text_holds_no_identifier_then_redact_keeps_it(text: str) -> None:
    assert redact(text) == text and not contains_identifier(text)


def test_when_an_error_is_built_then_its_message_is_redacted() -> None:
    number = NUMBERS[0]
    assert number not in str(InvalidInput(f"project {number!r} does not exist"))
    errors = RowErrors([RowError(1, "empty", "nhs")], context=f"dataset {number}")
    assert number not in str(errors) and "row 1, column 'nhs': empty" in str(errors)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("gp.diagnosis", "'gp.diagnosis'"), ("Siobhan Quixote", WITHHELD), ("ll112ab", WITHHELD),
     ("a@b.org", WITHHELD), ("gp_9434765919", WITHHELD), ("x" * 65, WITHHELD), (3, WITHHELD)],
)
def test_when_a_name_is_shown_then_only_safe_names_are_quoted(text: object, expected: str) -> None:
    assert shown(text) == expected
