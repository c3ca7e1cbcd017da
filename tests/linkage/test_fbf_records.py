"""The engine's table from sealed-then-opened ``pg-fbf-v1`` encodings (linkage/fbf_records.py)."""

from __future__ import annotations

import numpy as np
import pytest

from pseudogate.core import encoding as fbf
from pseudogate.core.encoding import EncodingKeyMismatch, derive_encoder
from pseudogate.linkage.comparisons import comparisons, levels
from pseudogate.linkage.fbf_records import BLOCKING_FIELDS, from_encodings, nhs_codes
from pseudogate.linkage.records import EncodedRecords

COLUMNS: dict[str, list[str | None]] = {
    "given_name": ["Siobhan", "Siobhan", "Siobhan", None],
    "family_name": ["Quixote", "Quixote", "Quixotte", "Hughes"],
    "date_of_birth": ["1971-03-04", "04/03/1971", "1971-04-03", "not known"],
    "sex": ["F", "female", None, "M"],
    "postcode": ["LL11 2AB", "ll112ab", None, "LL18 1EF"],
    "address": ["1 High Street", "1 High St", "1 High Street", None],
}
SECRETS = ("siobhan", "quixote", "hughes", "1971", "ll11", "high")


def _opened(key_id: str = "lk-test", material: bytes = bytes(range(32))) -> fbf.EncodedRecords:
    encoder = derive_encoder(key_id=key_id, material=material)
    return encoder.open(encoder.seal(encoder.encode(COLUMNS)), name="input 1")


def _table() -> EncodedRecords:
    n = len(COLUMNS["sex"])
    return from_encodings([_opened()], names=["input 1"], nhs=nhs_codes([None] * n),
                          source=[0] * n, row=list(range(1, n + 1)))


def test_when_records_are_mapped_then_the_engine_sees_their_levels() -> None:
    table = _table()
    assert table.key_id == "lk-test"
    assert table.fields == ("given_name", "family_name", "postcode", "address",
                            "date_of_birth", "sex")
    lv = levels(table, np.array([0, 0, 0]), np.array([1, 2, 3]))
    cols = dict(zip(table.fields, lv.T.tolist(), strict=True))
    assert cols["given_name"] == [1, 1, 0]      # equal; equal; missing
    assert cols["address"] == [1, 1, 0]         # St is street: identical filters
    assert cols["postcode"] == [1, 0, 5]        # same postcode; missing; else (other district)
    assert cols["date_of_birth"] == [1, 2, 0]   # same; day and month swapped; no parts
    assert cols["sex"] == [1, 0, 2]
    assert cols["family_name"][1] in (2, 3)     # a typo: close, not identical


def test_when_records_are_mapped_then_absent_blocking_keys_are_zero() -> None:
    table = _table()
    assert table.blocking_fields == BLOCKING_FIELDS
    assert table.blocking.shape == (4, 5)
    assert (table.blocking[0] == table.blocking[1]).all()  # same person, same keys
    assert (table.blocking[3, :3] == 0).all()  # no year: no fy, gdm, dob
    assert table.blocking[2, 4] == 0  # no postcode


def test_when_batches_come_from_different_keys_then_they_are_refused_without_values() -> None:
    a = _opened()
    b = _opened(key_id="lk-other", material=bytes(32))
    with pytest.raises(EncodingKeyMismatch) as info:
        from_encodings([a, b], names=["input 1", "input 2"], nhs=nhs_codes([None] * 8),
                       source=[0] * 4 + [1] * 4, row=[1, 2, 3, 4] * 2)
    text = str(info.value)
    assert "input 1" in text and "input 2" in text and "lk-other" in text
    assert all(s not in text.lower() for s in SECRETS)


def test_nhs_codes_are_equal_for_equal_tokens_and_minus_one_for_none() -> None:
    codes = nhs_codes(["b", None, "a", "b", ""]).tolist()
    assert codes[0] == codes[3] and codes[1] == codes[4] == -1 and codes[2] not in (-1, codes[0])


def test_when_names_are_diminutives_or_double_barrelled_then_token_levels_see_it() -> None:
    columns: dict[str, list[str | None]] = {
        "given_name": ["William", "Bill", "Wilma", "Liz", "Elizabeth"],
        "family_name": ["Smith-Jones", "Jones", "Jonas", "Smith", None],
        "date_of_birth": ["1971-03-04"] * 5,
        "sex": ["M"] * 5,
        "postcode": ["LL11 2AB", "LL11 9ZZ", "LL11", "CH1 2AB", None],
        "address": [None] * 5,
    }
    encoder = derive_encoder(key_id="lk-test", material=bytes(range(32)))
    opened = encoder.open(encoder.seal(encoder.encode(columns)), name="input 1")
    table = from_encodings([opened], names=["input 1"], nhs=nhs_codes([None] * 5),
                           source=[0] * 5, row=list(range(1, 6)))
    labels = {c.field: c.labels for c in comparisons(table)}
    assert labels["given_name"][3:] == ("nickname group agrees", "else")
    assert labels["family_name"][3:] == ("a surname part agrees", "else")
    assert labels["postcode"][3:] == ("district agrees", "else")
    assert labels["address"][3:] == ("else",)
    lv = levels(table, np.array([0, 0, 0, 3]), np.array([1, 2, 3, 4]))
    cols = dict(zip(table.fields, lv.T.tolist(), strict=True))
    assert cols["given_name"] == [4, 5, 5, 4]     # Bill ~ William; Wilma; Liz; Liz ~ Elizabeth
    assert cols["family_name"][:2] == [4, 5]      # Jones: a part of Smith-Jones; Jonas
    assert cols["family_name"][2] in (3, 4)       # Smith: Dice >= 0.7 here, else a part
    assert cols["family_name"][3] == 0
    assert cols["postcode"] == [4, 4, 5, 0]       # moved in LL11; partial LL11; CH1
