"""core/identity: the normalisation table of docs/linkage.md, example by example."""

from __future__ import annotations

import pytest

from pseudogate.core.identity import (
    DateParts,
    IdentityField,
    nickname_key,
    normalise_address,
    normalise_date,
    normalise_name,
    normalise_postcode,
    normalise_sex,
    soundex,
)


def test_the_identity_fields_are_the_six_of_issue_10() -> None:
    assert [f.value for f in IdentityField] == [
        "given_name",
        "family_name",
        "date_of_birth",
        "sex",
        "postcode",
        "address",
    ]


@pytest.mark.parametrize(
    ("raw", "parts"),
    [
        ("Siân", ("sian",)),
        ("O'Brien-Smith", ("obrien", "smith")),
        ("O\u2019Brien Smith", ("obrien", "smith")),
        ("  ZOË ", ("zoe",)),
        ("Jean-Luc\t\tPicard", ("jean", "luc", "picard")),
        ("Ødegård", ("ødegard",)),
        ("Großmann", ("grossmann",)),
        ("Henry 8th", ("henry", "th")),
        ("İstanbul", ("istanbul",)),
        ("Zoe\u0308", ("zoe",)),
        ("123", None),
        ("", None),
        (None, None),
    ],
)
def test_when_a_name_is_normalised_then_it_gives_its_parts(
    raw: str | None, parts: tuple[str, ...] | None
) -> None:
    assert normalise_name(raw) == parts


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ("1985-03-12", DateParts("1985-03-12", 1985, 3, 12)),
        ("19850312", DateParts("1985-03-12", 1985, 3, 12)),
        ("12/03/1985", DateParts("1985-03-12", 1985, 3, 12)),
        ("12.03.1985", DateParts("1985-03-12", 1985, 3, 12)),
        ("3/12/1985", DateParts("1985-12-03", 1985, 12, 3)),
        ("1985-3-12", DateParts("1985-03-12", 1985, 3, 12)),
        (" 1985-03-12 ", DateParts("1985-03-12", 1985, 3, 12)),
        ("1999-13-05", DateParts("1999-05-13", 1999, 5, 13)),
        ("05/13/1999", DateParts("1999-05-13", 1999, 5, 13)),
        ("2001-02-29", DateParts("2001-02-29", 2001, 2, 29)),
        ("1985-13-14", DateParts("1985 13 14")),
        ("unknown", DateParts("unknown")),
        ("2000/01/01", DateParts("2000 01 01")),
        ("  ", None),
        ("--", None),
    ],
)
def test_when_a_date_is_normalised_then_it_gives_its_parts(
    raw: str, want: DateParts | None
) -> None:
    assert normalise_date(raw) == want


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ("ll151aa", "LL15 1AA"),
        (" sw1a\u00a01aa ", "SW1A 1AA"),
        ("ll15", "LL15"),
        ("not known", "NOTKNOWN"),
        ("", None),
    ],
)
def test_when_a_postcode_is_normalised_then_valid_ones_are_canonical(
    raw: str, want: str | None
) -> None:
    assert normalise_postcode(raw) == want


@pytest.mark.parametrize(
    ("raw", "want"),
    [("Female", "f"), ("M", "m"), ("1", "m"), ("2", "f"), ("9", None), ("U", None),
     ("not known", None), ("Intersex", "intersex"), ("", None)],
)  # fmt: skip
def test_when_sex_is_normalised_then_codes_map_and_unknown_is_missing(
    raw: str, want: str | None
) -> None:
    assert normalise_sex(raw) == want


def test_when_an_address_is_normalised_then_abbreviations_are_spelt_out() -> None:
    assert normalise_address("Flat 3, 10 Downing St") == "flat 3 10 downing street"
    assert normalise_address("22b Park Ln") == "22b park lane"
    assert normalise_address(" ,, ") is None


@pytest.mark.parametrize(
    ("part", "code"),
    [("robert", "R163"), ("rupert", "R163"), ("tymczak", "T522"), ("pfister", "P236"),
     ("ashcraft", "A261"), ("john", "J500"), ("jon", "J500"), ("lee", "L000"), ("ø", "ø")],
)  # fmt: skip
def test_soundex_gives_the_american_soundex_codes(part: str, code: str) -> None:
    assert soundex(part) == code


def test_nickname_keys_join_nicknames_to_their_group() -> None:
    assert nickname_key("bill") == nickname_key("william") == "william"
    assert nickname_key("katie") == "catherine"
    assert nickname_key("sam") == "samuel"
    assert nickname_key("zebedee") == "zebedee"
