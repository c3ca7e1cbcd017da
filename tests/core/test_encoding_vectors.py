"""docs/test-vectors/encodings.json: every pg-fbf-v1 vector recomputed two ways.

Once with the independent implementation in tools/make_encoding_vectors.py (standard library
and AES-GCM only, written from docs/linkage.md), once with pseudogate.core.encoding; every
input normalised by pseudogate.core.identity must give the vector's normalised form.
"""

from __future__ import annotations

import base64
import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from pseudogate.core.encoding import (
    ENCODING_NAME,
    RECORD_BYTES,
    EncodingKeyMismatch,
    derive_encoder,
    key_id_of,
)
from pseudogate.core.identity import (
    normalise_address,
    normalise_date,
    normalise_name,
    normalise_postcode,
    normalise_sex,
)
from pseudogate.core.keyring import Keyring

ROOT = Path(__file__).resolve().parents[2]
VECTORS_FILE = ROOT / "docs" / "test-vectors" / "encodings.json"
VECTORS: list[dict[str, Any]] = json.loads(VECTORS_FILE.read_text(encoding="utf-8"))


def _independent() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "make_encoding_vectors", ROOT / "tools" / "make_encoding_vectors.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


INDEPENDENT = _independent()


def _id(v: dict[str, Any]) -> str:
    return f"{v['key_id']}:{v['input']['given_name']!a}:{v['input']['date_of_birth']!a}"


def _encoder(v: dict[str, Any]) -> Any:
    return derive_encoder(key_id=v["key_id"], material=base64.b64decode(v["key_b64"]))


def test_the_vectors_cover_two_keys_every_date_form_missing_fields_and_non_ascii() -> None:
    assert len(VECTORS) >= 20
    assert len({v["key_b64"] for v in VECTORS}) == 2
    dates = [v["input"]["date_of_birth"] or "" for v in VECTORS]
    assert any(len(d) == 10 and d[4] == "-" for d in dates)
    assert any(len(d) == 8 and d.isdigit() for d in dates)
    assert any("/" in d for d in dates)
    assert any(all(x is None for x in v["input"].values()) for v in VECTORS)
    assert any(not (v["input"]["given_name"] or "").isascii() for v in VECTORS)
    assert all(len(bytes.fromhex(v["record_hex"])) == RECORD_BYTES for v in VECTORS)


@pytest.mark.parametrize("vector", VECTORS, ids=[_id(v) for v in VECTORS])
def test_when_a_vector_is_normalised_by_pseudogate_then_it_gives_the_published_form(
    vector: dict[str, Any],
) -> None:
    raw, want = vector["input"], vector["normalised"]
    given = normalise_name(raw["given_name"])
    assert (list(given) if given else None) == want["given_name"]
    family = normalise_name(raw["family_name"])
    assert (list(family) if family else None) == want["family_name"]
    d = normalise_date(raw["date_of_birth"])
    got_d = None if d is None else {"text": d.text, "year": d.year, "month": d.month, "day": d.day}
    assert got_d == want["date_of_birth"]
    assert normalise_sex(raw["sex"]) == want["sex"]
    assert normalise_postcode(raw["postcode"]) == want["postcode"]
    assert normalise_address(raw["address"]) == want["address"]


@pytest.mark.parametrize("vector", VECTORS, ids=[_id(v) for v in VECTORS])
def test_when_the_independent_implementation_encodes_a_vector_then_it_matches(
    vector: dict[str, Any],
) -> None:
    key = base64.b64decode(vector["key_b64"])
    normalised, plain = INDEPENDENT.record(key, vector["input"])
    assert json.loads(json.dumps(normalised)) == vector["normalised"]
    assert plain.hex() == vector["record_hex"]
    sealed = INDEPENDENT.seal(key, vector["key_id"], plain, bytes.fromhex(vector["nonce_hex"]))
    assert base64.b64encode(sealed).decode("ascii") == vector["sealed_b64"]


@pytest.mark.parametrize("vector", VECTORS, ids=[_id(v) for v in VECTORS])
def test_when_pseudogate_encodes_a_vector_then_record_and_sealed_form_match(
    vector: dict[str, Any],
) -> None:
    encoder = _encoder(vector)
    encoded = encoder.encode_records([vector["input"]])
    assert encoded.records.tobytes().hex() == vector["record_hex"]
    (sealed,) = encoder.seal_with_nonces(encoded, bytes.fromhex(vector["nonce_hex"]))
    assert base64.b64encode(sealed).decode("ascii") == vector["sealed_b64"]
    blob = base64.b64decode(vector["sealed_b64"])
    assert key_id_of(blob) == vector["key_id"]
    assert encoder.open([blob]).records.tobytes().hex() == vector["record_hex"]


def test_when_all_vectors_of_a_key_are_encoded_as_one_batch_then_each_matches() -> None:
    for key_id in {v["key_id"] for v in VECTORS}:
        mine = [v for v in VECTORS if v["key_id"] == key_id]
        encoded = _encoder(mine[0]).encode_records([v["input"] for v in mine])
        got = [r.tobytes().hex() for r in encoded.records]
        assert got == [v["record_hex"] for v in mine]


def test_when_the_example_keyring_encodes_then_it_uses_the_example_linkage_key() -> None:
    ring = Keyring.load(ROOT / "keys_example" / "keyring.json")
    encoder = ring.linkage_encoder()
    mine = [v for v in VECTORS if v["key_id"] == encoder.key_id]
    assert mine
    encoded = encoder.encode_records([v["input"] for v in mine])
    assert [r.tobytes().hex() for r in encoded.records] == [v["record_hex"] for v in mine]


def test_when_a_stored_encoding_is_opened_under_another_key_then_it_is_refused() -> None:
    a = next(v for v in VECTORS if v["key_id"] == "example-link")
    b = next(v for v in VECTORS if v["key_id"] == "vectors-b")
    with pytest.raises(EncodingKeyMismatch, match="example-link"):
        _encoder(b).open([base64.b64decode(a["sealed_b64"])], name="dataset gp-a")


def test_when_a_sealed_encoding_is_altered_then_opening_fails() -> None:
    v = VECTORS[0]
    blob = bytearray(base64.b64decode(v["sealed_b64"]))
    blob[-1] ^= 1
    with pytest.raises(Exception, match="damaged"):
        _encoder(v).open([bytes(blob)])


def test_the_encoding_name_is_the_documented_one() -> None:
    assert ENCODING_NAME == "pg-fbf-v1"
    text = (ROOT / "docs" / "linkage.md").read_text(encoding="utf-8")
    assert "pseudogate/v1/encoding/pg-fbf-v1/" in text


def test_when_the_c_accelerator_is_not_used_then_the_records_are_the_same() -> None:
    from pseudogate.core.encoding import SUBKEYS

    for key_id in {v["key_id"] for v in VECTORS}:
        mine = [v for v in VECTORS if v["key_id"] == key_id]
        encoder = _encoder(mine[0])
        encoder._fast = dict.fromkeys(SUBKEYS)  # the pure-Python HMAC path
        encoded = encoder.encode_records([v["input"] for v in mine])
        assert [r.tobytes().hex() for r in encoded.records] == [v["record_hex"] for v in mine]


def test_the_snippet_in_docs_linkage_md_runs() -> None:
    import re
    import subprocess
    import sys

    text = (ROOT / "docs" / "linkage.md").read_text(encoding="utf-8")
    (code,) = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
    code += "\nassert opened.records.tobytes() == records.records.tobytes()\n"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True)
