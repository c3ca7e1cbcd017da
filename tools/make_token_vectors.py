"""Write docs/test-vectors/tokens.json from hand-written (input, normalised) pairs.

The normalised forms below are written by hand from the rules in docs/tokens.md (not computed
by pseudogate), and the tokens are computed here with hashlib/hmac and a hand-written HKDF, so
the vectors are independent of the code they check. Run: python tools/make_token_vectors.py
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "test-vectors" / "tokens.json"

# Key A is the example linkage key (keys_example/keyring.json); key B is a fixed test key.
KEYS = {
    "example-link": "Q2RjkH932/IHP7Bc1dtgE2ySqzWSfrEyY4VL9cOywRI=",
    "vectors-b": base64.b64encode(bytes(range(32))).decode("ascii"),
}

# (key id, domain, kind, input, normalised by hand)
CASES: list[tuple[str, str, str, str, str]] = [
    ("example-link", "nhs_number", "nhs_number", "9434765919", "9434765919"),
    ("example-link", "nhs_number", "nhs_number", "943 476 5919", "9434765919"),
    ("example-link", "nhs_number", "nhs_number", "943-476-5919", "9434765919"),
    ("example-link", "nhs_number", "nhs_number", "\t943 476 5919 ", "9434765919"),
    ("example-link", "nhs_number", "nhs_number", "943\u00a0476\u00a05919", "9434765919"),
    ("example-link", "nhs_number", "nhs_number", " 401-023 2137\r\n", "4010232137"),
    ("example-link", "nhs_number", "nhs_number", "083\u2013016\u20136130", "0830166130"),
    ("example-link", "person", "nhs_number", "943 476 5919", "9434765919"),
    ("vectors-b", "nhs_number", "nhs_number", "943 476 5919", "9434765919"),
    ("vectors-b", "gp-practice-a", "nhs_number", "186 091 3903", "1860913903"),
    ("example-link", "postcode", "postcode", "LL15 1AA", "LL15 1AA"),
    ("example-link", "postcode", "postcode", "ll151aa", "LL15 1AA"),
    ("example-link", "postcode", "postcode", " ll15\t1aa ", "LL15 1AA"),
    ("example-link", "postcode", "postcode", "sw1a\u00a01aa", "SW1A 1AA"),
    ("example-link", "postcode", "postcode", "m1 1ae", "M1 1AE"),
    ("example-link", "postcode", "postcode", "B338TH", "B33 8TH"),
    ("example-link", "postcode", "postcode", "ec1a  1bb", "EC1A 1BB"),
    ("vectors-b", "postcode", "postcode", "gir0aa", "GIR 0AA"),
    ("example-link", "date", "date", "2024-02-29", "2024-02-29"),
    ("example-link", "date", "date", " 1970-01-01 ", "1970-01-01"),
    ("vectors-b", "date-of-birth", "date", "1999-12-31", "1999-12-31"),
    ("example-link", "name", "name", "Siân O'Brien", "sian o brien"),
    ("example-link", "name", "name", "SIAN  O BRIEN", "sian o brien"),
    ("example-link", "name", "name", "José", "jose"),
    ("example-link", "name", "name", "  ZOË ", "zoe"),
    ("example-link", "name", "name", "Ólafur Arnalds", "olafur arnalds"),
    ("example-link", "name", "name", "Ødegård", "ødegard"),
    ("example-link", "name", "name", "Jean-Luc\t\tPicard", "jean luc picard"),
    ("example-link", "name", "name", "Mary-Jane O\u2019Neill", "mary jane o neill"),
    ("example-link", "name", "name", "Henry 8th", "henry th"),
    ("example-link", "name", "name", "Großmann", "grossmann"),
    ("example-link", "name", "name", "Zoe\u0308 Nu\u0301n\u0303ez", "zoe nunez"),
    ("vectors-b", "name", "name", "Siân O'Brien", "sian o brien"),
    ("vectors-b", "surname", "name", "O'Brien-Smith 2nd", "o brien smith nd"),
    ("example-link", "email", "email", " Alice.Smith@NHS.net ", "alice.smith@nhs.net"),
    ("example-link", "email", "email", "bob@example.org", "bob@example.org"),
    ("example-link", "email", "email", "ZOË@Example.COM", "zoë@example.com"),
    ("vectors-b", "email", "email", "\tCarol+gp@Surgery.NHS.UK\n", "carol+gp@surgery.nhs.uk"),
    ("example-link", "text", "text", " Café ", "Café"),
    ("example-link", "text", "text", "Cafe\u0301", "Café"),
    ("example-link", "text", "text", "Ward 7B", "Ward 7B"),
    ("vectors-b", "free-text", "text", "\u00a0Flat 3, 12 High St\u00a0", "Flat 3, 12 High St"),
]


def hkdf_sha256(ikm: bytes, info: bytes, length: int = 32) -> bytes:
    """RFC 5869 with an empty salt (HashLen zero bytes), written out by hand."""
    prk = hmac.new(b"\x00" * 32, ikm, hashlib.sha256).digest()
    okm, block, counter = b"", b"", 1
    while len(okm) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        okm += block
        counter += 1
    return okm[:length]


def token(key_id: str, key: bytes, domain: str, normalised: str) -> str:
    derived = hkdf_sha256(key, ("pseudogate/v1/domain/" + domain).encode("utf-8"))
    mac = hmac.new(derived, normalised.encode("utf-8"), hashlib.sha256).digest()
    return key_id + "_" + base64.b32encode(mac[:20]).decode("ascii").rstrip("=").lower()


def build() -> list[dict[str, str]]:
    return [
        {
            "key_id": key_id,
            "key_b64": KEYS[key_id],
            "domain": domain,
            "kind": kind,
            "input": raw,
            "normalised": normalised,
            "token": token(key_id, base64.b64decode(KEYS[key_id]), domain, normalised),
        }
        for key_id, domain, kind, raw, normalised in CASES
    ]


if __name__ == "__main__":
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(build(), indent=2, ensure_ascii=True) + "\n", encoding="utf-8")
    print(f"wrote {len(CASES)} vectors to {OUT.relative_to(ROOT)}")
