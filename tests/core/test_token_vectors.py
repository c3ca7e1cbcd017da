"""docs/test-vectors/tokens.json: every token recomputed two ways.

Once with an independent implementation written in the tests (hashlib/hmac and a hand-written
HKDF), once with pseudogate's Tokeniser; and every input normalised by pseudogate must give the
vector's normalised form.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from pseudogate.core.keyring import EXAMPLE_KEYRING, Keyring
from pseudogate.core.normalise import Kind, normalise, normalise_many
from pseudogate.core.tokens import DOMAIN_INFO_PREFIX, Tokeniser, derive_key

from . import independent

ROOT = Path(__file__).resolve().parents[2]
VECTORS_FILE = ROOT / "docs" / "test-vectors" / "tokens.json"
EXAMPLE_FILE = ROOT / "keys_example" / "keyring.json"
VECTORS: list[dict[str, Any]] = json.loads(VECTORS_FILE.read_text(encoding="utf-8"))
FIELDS = {"key_id", "key_b64", "domain", "kind", "input", "normalised", "token"}


def _id(v: dict[str, Any]) -> str:
    return f"{v['key_id']}:{v['domain']}:{v['input']!a}"


def test_the_vectors_cover_every_kind_two_keys_and_messy_non_ascii_inputs() -> None:
    assert len(VECTORS) >= 30
    assert all(set(v) == FIELDS for v in VECTORS)
    assert {v["kind"] for v in VECTORS} == {k.value for k in Kind}
    assert len({v["key_b64"] for v in VECTORS}) >= 2
    assert len({v["domain"] for v in VECTORS}) >= 6
    inputs = [v["input"] for v in VECTORS]
    for messy in ("\t", "\u00a0", "-", "  "):
        assert any(messy in i for i in inputs), f"no vector input contains {messy!a}"
    assert any(
        i != i.lower() and v["normalised"] == v["normalised"].lower()
        for i, v in zip(inputs, VECTORS, strict=True)
    )
    names = [v["input"] for v in VECTORS if v["kind"] == "name"]
    for needle in ("Siân O'Brien", "José", "ZOË", "Ólafur", "Ødegård", "8th", "-"):
        assert any(needle in n for n in names), f"no name vector with {needle!r}"


@pytest.mark.parametrize("vector", VECTORS, ids=[_id(v) for v in VECTORS])
def test_input_normalises_to_the_vectors_normalised_form(vector: dict[str, Any]) -> None:
    assert normalise(vector["kind"], vector["input"]) == vector["normalised"]
    assert normalise_many(vector["kind"], [vector["input"]]) == ([vector["normalised"]], [])


@pytest.mark.parametrize("vector", VECTORS, ids=[_id(v) for v in VECTORS])
def test_independent_implementation_gives_the_vectors_token(vector: dict[str, Any]) -> None:
    assert vector["token"] == independent.token(
        key_id=vector["key_id"],
        key=base64.b64decode(vector["key_b64"], validate=True),
        domain=vector["domain"],
        normalised=vector["normalised"],
    )


@pytest.mark.parametrize("vector", VECTORS, ids=[_id(v) for v in VECTORS])
def test_tokeniser_gives_the_vectors_token(vector: dict[str, Any]) -> None:
    tokeniser = Tokeniser(
        key_id=vector["key_id"],
        label=f"domain/{vector['domain']}",
        derived_key=derive_key(
            base64.b64decode(vector["key_b64"]), DOMAIN_INFO_PREFIX + vector["domain"]
        ),
    )
    assert tokeniser.token(vector["normalised"]) == vector["token"]
    assert tokeniser.tokens([vector["normalised"]]) == [vector["token"]]


def test_example_keyring_tokens_match_the_vectors_made_with_its_linkage_key() -> None:
    doc = json.loads(EXAMPLE_FILE.read_text(encoding="utf-8"))
    (linkage,) = [k for k in doc["keys"] if k["purpose"] == "linkage"]
    ring = Keyring.load(EXAMPLE_FILE)
    mine = [v for v in VECTORS if v["key_id"] == linkage["id"]]
    assert len(mine) >= 20
    for v in mine:
        assert v["key_b64"] == linkage["material"]
        assert ring.linkage_tokeniser(v["domain"]).token(v["normalised"]) == v["token"]


def test_packaged_example_keyring_is_identical_to_keys_example() -> None:
    assert EXAMPLE_KEYRING.read_bytes() == EXAMPLE_FILE.read_bytes()
