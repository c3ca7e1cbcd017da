"""Normalisation by kind (issue section 4): accepted forms, reason codes, no echoed values."""

from __future__ import annotations

import pytest

from pseudogate.core.errors import InvalidInput
from pseudogate.core.normalise import (
    HYPHENS,
    SPACES,
    InvalidValue,
    Kind,
    Reason,
    is_valid_nhs_number,
    normalise,
    normalise_many,
    normaliser,
)

VALID = [
    (Kind.NHS_NUMBER, "9434765919", "9434765919"),
    (Kind.NHS_NUMBER, " 943 476 5919 ", "9434765919"),
    (Kind.NHS_NUMBER, "943-476-5919", "9434765919"),
    (Kind.NHS_NUMBER, "943\u00a0476\u20095919", "9434765919"),
    (Kind.NHS_NUMBER, "943\u2010476\u20135919", "9434765919"),
    (Kind.NHS_NUMBER, "4010232137", "4010232137"),
    (Kind.POSTCODE, "ll15 1aa", "LL15 1AA"),
    (Kind.POSTCODE, "LL151AA", "LL15 1AA"),
    (Kind.POSTCODE, " sw1a\t1aa ", "SW1A 1AA"),
    (Kind.POSTCODE, "w1a0ax", "W1A 0AX"),
    (Kind.POSTCODE, "M1 1AE", "M1 1AE"),
    (Kind.POSTCODE, "b33 8th", "B33 8TH"),
    (Kind.POSTCODE, "CR2 6XH", "CR2 6XH"),
    (Kind.POSTCODE, "dn55 1pt", "DN55 1PT"),
    (Kind.POSTCODE, "GIR 0AA", "GIR 0AA"),
    (Kind.DATE, "2024-02-29", "2024-02-29"),
    (Kind.DATE, "1900-01-01", "1900-01-01"),
    (Kind.NAME, "Siân O'Brien", "sian o brien"),
    (Kind.NAME, "  JOSÉ   GARCÍA-LÓPEZ ", "jose garcia lopez"),
    (Kind.NAME, "Zoë", "zoe"),
    (Kind.NAME, "Ødegård", "ødegard"),
    (Kind.NAME, "Straße", "strasse"),
    (Kind.NAME, "ﬁnn", "finn"),  # NFKD splits the ligature
    (Kind.EMAIL, "  Alice@Example.ORG ", "alice@example.org"),
    (Kind.EMAIL, "a@b", "a@b"),
    (Kind.TEXT, "  Cafe\u0301 ", "Café"),
    (Kind.TEXT, "x", "x"),
]

INVALID = [
    (Kind.NHS_NUMBER, "", Reason.EMPTY),
    (Kind.NHS_NUMBER, " - ", Reason.EMPTY),
    (Kind.NHS_NUMBER, "943476591", Reason.BAD_FORMAT),
    (Kind.NHS_NUMBER, "94347659190", Reason.BAD_FORMAT),
    (Kind.NHS_NUMBER, "94347659l9", Reason.BAD_FORMAT),
    (Kind.NHS_NUMBER, "９４３４７６５９１９", Reason.BAD_FORMAT),  # full-width digits
    (Kind.NHS_NUMBER, "943.476.5919", Reason.BAD_FORMAT),
    (Kind.NHS_NUMBER, "9434765918", Reason.INVALID_CHECK_DIGIT),
    (Kind.NHS_NUMBER, "1234567890", Reason.INVALID_CHECK_DIGIT),  # check digit would be 10
    (Kind.POSTCODE, "", Reason.EMPTY),
    (Kind.POSTCODE, "LL15", Reason.BAD_FORMAT),
    (Kind.POSTCODE, "LL15-1AA", Reason.BAD_FORMAT),
    (Kind.POSTCODE, "QQ1 1AA", Reason.BAD_FORMAT),
    (Kind.POSTCODE, "LL15 1CA", Reason.BAD_FORMAT),
    (Kind.POSTCODE, "\u017fW1A 1AA", Reason.BAD_FORMAT),  # long s upper-cases to S
    (Kind.DATE, "", Reason.EMPTY),
    (Kind.DATE, "2023-02-29", Reason.INVALID_DATE),
    (Kind.DATE, "2024-13-01", Reason.INVALID_DATE),
    (Kind.DATE, "0000-01-01", Reason.INVALID_DATE),
    (Kind.DATE, "01/02/2024", Reason.BAD_FORMAT),
    (Kind.DATE, "2024-2-1", Reason.BAD_FORMAT),
    (Kind.DATE, "20240201", Reason.BAD_FORMAT),
    (Kind.NAME, "", Reason.EMPTY),
    (Kind.NAME, " 123 -' ", Reason.EMPTY),
    (Kind.EMAIL, "  ", Reason.EMPTY),
    (Kind.EMAIL, "alice.example.org", Reason.BAD_FORMAT),
    (Kind.EMAIL, "@example.org", Reason.BAD_FORMAT),
    (Kind.EMAIL, "alice@", Reason.BAD_FORMAT),
    (Kind.EMAIL, "a@b@c", Reason.BAD_FORMAT),
    (Kind.TEXT, " \t\u00a0", Reason.EMPTY),
    (Kind.TEXT, "a\ud800", Reason.BAD_FORMAT),  # a lone surrogate cannot be UTF-8
    (Kind.EMAIL, "a\udfff@b", Reason.BAD_FORMAT),
]


@pytest.mark.parametrize(
    ("kind", "raw", "expected"), VALID, ids=[f"{k}:{r!a}" for k, r, _ in VALID]
)
def test_when_value_is_valid_then_it_normalises_as_documented(
    kind: Kind, raw: str, expected: str
) -> None:
    assert normalise(kind, raw) == expected
    assert normaliser(kind)(raw) == expected


@pytest.mark.parametrize(
    ("kind", "raw", "reason"), INVALID, ids=[f"{k}:{r!a}" for k, r, _ in INVALID]
)
def test_when_value_is_invalid_then_reason_code_and_no_value_in_message(
    kind: Kind, raw: str, reason: Reason
) -> None:
    with pytest.raises(InvalidValue) as info:
        normalise(kind, raw)
    assert info.value.reason is reason
    assert str(info.value) == f"invalid value: {reason.value}"
    assert info.value.args == (f"invalid value: {reason.value}",)


def test_when_value_is_not_text_then_not_text() -> None:
    with pytest.raises(InvalidValue) as info:
        normalise(Kind.NAME, 42)  # type: ignore[arg-type]
    assert info.value.reason is Reason.NOT_TEXT


def test_when_kind_is_unknown_then_invalid_input() -> None:
    with pytest.raises(InvalidInput, match="unknown identifier kind 'shoe_size'"):
        normaliser("shoe_size")


def test_spaces_list_is_exactly_what_python_calls_whitespace() -> None:
    assert set(SPACES) == {chr(c) for c in range(0x110000) if chr(c).isspace()}


@pytest.mark.parametrize("sep", list(SPACES + HYPHENS), ids=lambda c: f"U+{ord(c):04X}")
def test_every_space_and_hyphen_is_dropped_from_nhs_numbers(sep: str) -> None:
    assert normalise(Kind.NHS_NUMBER, f"943{sep}476{sep}5919") == "9434765919"


def test_is_valid_nhs_number_agrees_with_normalise() -> None:
    assert is_valid_nhs_number("943 476 5919")
    assert not is_valid_nhs_number("943 476 5918")
    assert not is_valid_nhs_number("")


@pytest.mark.parametrize("kind", list(Kind))
def test_normalise_many_matches_normalise_value_by_value(kind: Kind) -> None:
    raws = [r for k, r, _ in VALID if k is kind] + [r for k, r, _ in INVALID if k is kind]
    raws = raws + [None, *raws]  # type: ignore[list-item]
    normalised, errors = normalise_many(kind, raws)  # type: ignore[arg-type]
    expected_out: list[str | None] = []
    expected_errors: list[tuple[int, Reason]] = []
    for i, raw in enumerate(raws):
        try:
            expected_out.append(normalise(kind, raw))  # type: ignore[arg-type]
        except InvalidValue as exc:
            expected_out.append(None)
            expected_errors.append((i, exc.reason))
    assert normalised == expected_out
    assert errors == expected_errors
    assert len(errors) > 0
