"""Properties of identity normalisation and pg-fbf-v1 encodings (hypothesis)."""

from __future__ import annotations

import string

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pseudogate.core.encoding import (
    EncodedRecords,
    Encoder,
    EncodingKeyMismatch,
    blocking_keys,
    compare,
    derive_encoder,
    require_same_key,
)
from pseudogate.core.identity import (
    IdentityField,
    normalise_address,
    normalise_date,
    normalise_name,
    normalise_postcode,
    normalise_sex,
)

A = derive_encoder(key_id="key-a", material=bytes(32))
B = derive_encoder(key_id="key-b", material=bytes(range(32)))
PAIR = np.array([0]), np.array([1])
names = st.text(alphabet=string.ascii_lowercase, min_size=2, max_size=12)


def _two(encoder: Encoder, field: str, a: str, b: str) -> EncodedRecords:
    return encoder.encode({field: [a, b]})


@given(st.text())
@settings(max_examples=300)
def test_when_any_text_is_normalised_or_encoded_then_nothing_raises(value: str) -> None:
    normalise_name(value)
    normalise_date(value)
    normalise_postcode(value)
    normalise_address(value)
    normalise_sex(value)
    encoded = A.encode({f: [value] for f in IdentityField})
    assert len(A.open(A.seal(encoded))) == 1


@pytest.mark.parametrize("value", ["\ud800", "a\udfffb", "\x00", "\u200b", "\U0001f600"])
def test_when_text_has_lone_surrogates_or_oddities_then_encoding_still_works(value: str) -> None:
    encoded = A.encode({f: [value, value + "2024-01-01"] for f in IdentityField})
    assert len(A.open(A.seal(encoded))) == 2


def test_when_a_column_names_no_identity_field_then_the_error_lists_the_fields() -> None:
    from pseudogate.core.errors import InvalidInput

    with pytest.raises(InvalidInput, match="given_name"):
        A.encode({"forename": ["x"]})


def test_when_values_are_not_strings_then_they_are_missing() -> None:
    encoded = A.encode({f: [None, 3, b"x"] for f in IdentityField})
    assert not encoded.records["given_flags"].any()
    assert not encoded.records["block_flags"].any()


@given(names, names, st.sampled_from(["upper", "title", "spaced", "accent", "hyphen"]))
def test_when_case_spacing_or_accents_change_then_the_encoding_does_not(
    first: str, second: str, how: str
) -> None:
    plain = f"{first} {second}"
    messy = {
        "upper": plain.upper(),
        "title": plain.title(),
        "spaced": f"  {first}\t \u00a0{second} ",
        "accent": "".join(c + "\u0301" if c in "aeiou" else c for c in plain),
        "hyphen": f"{first}-{second}",
    }[how]
    for field in ("given_name", "family_name"):
        encoded = _two(A, field, plain, messy)
        assert encoded.records[0].tobytes() == encoded.records[1].tobytes()


@given(names)
def test_when_keys_differ_then_encodings_differ(name: str) -> None:
    a = A.encode({"given_name": [name]}).records["given_bf"]
    b = B.encode({"given_name": [name]}).records["given_bf"]
    assert a.tobytes() != b.tobytes()


@given(st.text(alphabet=string.ascii_lowercase, min_size=5, max_size=12), st.data())
def test_when_a_name_has_one_letter_typo_then_its_similarity_stays_high(
    name: str, data: st.DataObject
) -> None:
    i = data.draw(st.integers(0, len(name) - 1))
    letter = data.draw(st.sampled_from([c for c in string.ascii_lowercase if c != name[i]]))
    typo = name[:i] + letter + name[i + 1 :]
    encoded = _two(A, "family_name", name, typo)
    assert compare(encoded, *PAIR[:1], encoded, PAIR[1])["family_dice"][0] >= 0.5


def test_when_names_are_misspelt_or_nicknames_then_they_still_score() -> None:
    enc = A.encode({"given_name": ["John", "Jon", "William", "Bill", "Katie", "Zebedee"]})
    c = compare(enc, np.array([0, 2, 0]), enc, np.array([1, 3, 5]))
    assert c["given_dice"][0] > 0.6 and c["given_phon"][0] == 1.0
    assert c["given_nick"][1] == 1.0 and c["given_first"][1] == 0.0
    assert c["given_dice"][2] < 0.3 and c["given_nick"][2] == 0.0


def test_when_day_and_month_are_swapped_then_the_date_scores_as_a_swap() -> None:
    enc = A.encode({"date_of_birth": ["1985-03-12", "03/12/1985", "19850312", "1986-03-12"]})
    c = compare(enc, np.array([0, 0, 0]), enc, np.array([1, 2, 3]))
    assert c["dob"].tolist() == [0.75, 1.0, 0.5]


def test_when_a_surname_is_hyphenated_or_a_postcode_partial_then_parts_still_agree() -> None:
    enc = A.encode({"family_name": ["Smith", "Jones-Smith"], "postcode": ["LL15 1AA", "ll15"]})
    c = compare(enc, *PAIR[:1], enc, PAIR[1])
    assert c["family_part"][0] == 1.0
    assert c["postcode_out"][0] == 1.0 and c["postcode_full"][0] == 0.0
    assert c["postcode_dice"][0] > 0.5


def test_when_one_field_is_wrong_then_a_true_match_still_shares_a_blocking_key() -> None:
    base = ["John", "Smith", "1985-03-12", "M", "LL15 1AA"]
    variants = [
        ["Jack", "Smith", "1985-03-12", "M", "LL15 1AA"],
        ["John", "Brown", "1985-03-12", "M", "LL15 1AA"],
        ["John", "Smith", "1958-03-21", "M", "LL15 1AA"],
        ["John", "Smith", "1985-12-03", "M", "LL15 1AA"],
        ["John", "Smith", "1985-03-12", "F", "SW1A 1AA"],
        ["Bill", "Smyth-Jones", "1985-03-12", "M", "SW1A 1AA"],
    ]
    fields = ["given_name", "family_name", "date_of_birth", "sex", "postcode"]
    rows = [base, *variants]
    keys, present = blocking_keys(A.encode({f: [r[i] for r in rows] for i, f in enumerate(fields)}))
    for j in range(1, len(rows)):
        shared = (keys[0] == keys[j]) & present[0] & present[j]
        assert shared.any(), rows[j]


def test_when_encodings_of_different_keys_are_compared_then_it_is_refused_naming_datasets() -> None:
    a = A.encode({"given_name": ["x"]})
    b = B.encode({"given_name": ["x"]})
    with pytest.raises(EncodingKeyMismatch, match="fire-visits.*key-b|gp-a.*key-a"):
        require_same_key(a, b, names=["gp-a", "fire-visits"])
    with pytest.raises(EncodingKeyMismatch):
        compare(a, np.array([0]), b, np.array([0]))
    with pytest.raises(EncodingKeyMismatch):
        B.open(A.seal(a))


def test_when_the_same_record_is_sealed_twice_then_the_stored_bytes_differ() -> None:
    enc = A.encode({"given_name": ["John", "John"]})
    one, two = A.seal(enc)
    assert one != two
    assert A.open([one, two]).records.tobytes() == enc.records.tobytes()


def test_when_an_encoder_is_pickled_or_printed_then_no_key_leaks() -> None:
    import pickle

    with pytest.raises(TypeError):
        pickle.dumps(A)
    assert "key-a" in repr(A) and "00" not in repr(A)


def test_when_a_batch_is_split_then_each_record_encodes_the_same() -> None:
    cols: dict[str, list[str | None]] = {
        "given_name": ["Jon", "Siân", None, "Bill", "Jon"],
        "family_name": ["Smith", "O'Brien", "Ng", "", "Smith"],
        "date_of_birth": ["1985-03-12", "12/03/1985", "x", "19700101", "1985-03-12"],
        "postcode": ["LL15 1AA", "ll15", None, "SW1A 1AA", "LL15 1AA"],
        "address": ["12 High St", None, "1 Rd", "", "12 High St"],
    }
    whole = A.encode(cols)
    parts = [A.encode({k: v[i : i + 2] for k, v in cols.items()}) for i in range(0, 5, 2)]
    assert EncodedRecords.concat(parts).records.tobytes() == whole.records.tobytes()
    assert whole.records[0].tobytes() == whole.records[4].tobytes()
