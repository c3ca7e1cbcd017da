"""HMAC-SHA256 (RFC 4231) and HKDF-SHA256 (RFC 5869) against the published vectors.

The vectors are data files under tests/core/vectors/; each test is parametrised over them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from pseudogate.core.tokens import TOKEN_BYTES, Tokeniser, derive_key

from .independent import hkdf_sha256

VECTORS = Path(__file__).parent / "vectors"


def _load(name: str) -> list[dict[str, Any]]:
    return json.loads((VECTORS / name).read_text(encoding="utf-8"))["vectors"]


HMAC_VECTORS = _load("rfc4231_hmac_sha256.json")
HKDF_VECTORS = _load("rfc5869_hkdf_sha256.json")


def _ids(vectors: list[dict[str, Any]]) -> list[str]:
    return [v["name"] for v in vectors]


def test_the_vector_files_hold_every_published_case() -> None:
    assert len(HMAC_VECTORS) == 7
    assert len(HKDF_VECTORS) == 3


@pytest.mark.parametrize("vector", HMAC_VECTORS, ids=_ids(HMAC_VECTORS))
def test_hmac_sha256_matches_rfc4231(vector: dict[str, Any]) -> None:
    mac = hmac.new(bytes.fromhex(vector["key"]), bytes.fromhex(vector["data"]), hashlib.sha256)
    assert mac.hexdigest()[: len(vector["mac"])] == vector["mac"]


def _is_utf8(hex_data: str) -> bool:
    try:
        bytes.fromhex(hex_data).decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


# A token's input is text, so only the vectors whose data is UTF-8 can go through a Tokeniser.
TEXT_HMAC_VECTORS = [v for v in HMAC_VECTORS if _is_utf8(v["data"])]


def test_most_hmac_vectors_have_text_data() -> None:
    assert len(TEXT_HMAC_VECTORS) == 5


@pytest.mark.parametrize("vector", TEXT_HMAC_VECTORS, ids=_ids(TEXT_HMAC_VECTORS))
def test_tokeniser_mac_is_rfc4231_hmac_sha256(vector: dict[str, Any]) -> None:
    """The Tokeniser's MAC (fast path included) is HMAC-SHA256 keyed with the derived key."""
    data = bytes.fromhex(vector["data"])
    text = data.decode("utf-8")
    full = hmac.new(bytes.fromhex(vector["key"]), data, hashlib.sha256).digest()
    assert full.hex().startswith(vector["mac"])
    expected = "k_" + base64.b32encode(full[:TOKEN_BYTES]).decode("ascii").lower()
    tokeniser = Tokeniser(key_id="k", label="rfc4231", derived_key=bytes.fromhex(vector["key"]))
    assert tokeniser.token(text) == expected
    assert tokeniser.tokens([text, text]) == [expected, expected]


@pytest.mark.parametrize("vector", HKDF_VECTORS, ids=_ids(HKDF_VECTORS))
def test_hkdf_sha256_matches_rfc5869(vector: dict[str, Any]) -> None:
    salt = bytes.fromhex(vector["salt"])
    okm = HKDF(
        algorithm=hashes.SHA256(),
        length=vector["length"],
        salt=salt or None,
        info=bytes.fromhex(vector["info"]),
    ).derive(bytes.fromhex(vector["ikm"]))
    assert okm.hex() == vector["okm"]


@pytest.mark.parametrize("vector", HKDF_VECTORS, ids=_ids(HKDF_VECTORS))
def test_hand_written_hkdf_matches_rfc5869(vector: dict[str, Any]) -> None:
    """The independent HKDF that checks our token vectors is itself checked here."""
    okm = hkdf_sha256(
        bytes.fromhex(vector["ikm"]),
        info=bytes.fromhex(vector["info"]),
        salt=bytes.fromhex(vector["salt"]),
        length=vector["length"],
    )
    assert okm.hex() == vector["okm"]


def test_derive_key_is_rfc5869_with_empty_salt_and_32_bytes() -> None:
    """derive_key uses an empty salt and L=32: the first 32 bytes of RFC 5869 test case 3."""
    (case3,) = [v for v in HKDF_VECTORS if v["salt"] == "" and v["info"] == ""]
    assert derive_key(bytes.fromhex(case3["ikm"]), "").hex() == case3["okm"][:64]
