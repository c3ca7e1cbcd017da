"""Write docs/test-vectors/encodings.json: pg-fbf-v1 encodings computed from docs/linkage.md.

This is a second, independent implementation of the construction (normalisation, q-grams,
HMAC positions, tokens, blocking keys, record layout, sealing) written from docs/linkage.md
with only the standard library and pyca/cryptography's AES-GCM; it shares no code with
pseudogate. The tests import it (tests/core/test_encoding_vectors.py) and check every vector
against both it and pseudogate.core.encoding. Run: python tools/make_encoding_vectors.py
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import struct
import unicodedata
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "test-vectors" / "encodings.json"
NAME = "pg-fbf-v1"

KEYS = {
    "example-link": "Q2RjkH932/IHP7Bc1dtgE2ySqzWSfrEyY4VL9cOywRI=",
    "vectors-b": base64.b64encode(bytes(range(32))).decode("ascii"),
}

FIELDS = ("given_name", "family_name", "date_of_birth", "sex", "postcode", "address")

# (key id, given, family, date of birth, sex, postcode, address)
CASES: list[tuple[str, str | None, str | None, str | None, str | None, str | None, str | None]] = [
    ("example-link", "John", "Smith", "1985-03-12", "M", "LL15 1AA", "12 High Street"),
    ("example-link", "Jon", "SMITH", "12/03/1985", "male", "ll151aa", "12 High St."),
    ("example-link", "Bill", "Jones", "19700101", "1", "SW1A 1AA", "Flat 3, 10 Downing St"),
    ("example-link", "William", "Jones", "1970-01-01", "m", "sw1a1aa", None),
    ("example-link", "Siân", "O'Brien-Smith", "03/12/1985", "F", "CF10 1AA", "1 Heol y Castell"),
    ("example-link", "SIAN", "OBrien Smith", "1985-12-03", "female", "CF10", "1 heol-y-castell"),
    ("example-link", "José", "Núñez", "2001-02-29", "2", "m1 1ae", "Apt 4 Café Rd"),
    ("example-link", "  ZOË ", "Ødegård", "29/02/2000", "Woman", "B33 8TH", None),
    ("example-link", "Mary-Jane", "Großmann", "1999-13-05", "f", "EC1A 1BB", "5 Grove Ave"),
    ("example-link", "Mary Jane", "Grossmann", "05/13/1999", "U", "ec1a 1bb", "5 grove avenue"),
    ("example-link", "Jean-Luc\t\tPicard", None, "2305-07-13", "", "not known", "Enterprise"),
    ("example-link", None, None, None, None, None, None),
    ("example-link", "", "   ", "", "9", "", ""),
    ("example-link", "Henry 8th", "Tudor", "28/06/1491", "x", "GIR 0AA", "Hampton Court"),
    ("example-link", "Ólafur", "Arnalds", "3/11/1986", "M", "EH1 1YZ", "Reykjavík 101"),
    ("example-link", "Mohammed", "Khan", "1990-1-2", "M", "LS1 4AP", "22b Park Lane"),
    ("example-link", "Muhammad", "Khan", "unknown", "m", "LS1", "22B Park Ln"),
    ("example-link", "Katie", "Taylor-Wood", "20010229", "F", "ZZ99 9ZZ", "The Old Mill"),
    ("example-link", "Kate", "Wood", "31.12.1960", "F", "NE1 7RU", "the old mill"),
    ("example-link", "Zoe\u0308 Nu\u0301n\u0303ez", "D\u2019Arcy", " 1975-06-15 ", "F", None, None),
    ("vectors-b", "John", "Smith", "1985-03-12", "M", "LL15 1AA", "12 High Street"),
    ("vectors-b", "Jon", "SMITH", "12/03/1985", "male", "ll151aa", "12 High St."),
    ("vectors-b", "Bill", "Jones", "19700101", "1", "SW1A 1AA", "Flat 3, 10 Downing St"),
    ("vectors-b", "Ødegård", "Ødegård", "2000/01/01", "M", "ll15  1aa", "Ødegård 1"),
]

# -- normalisation (docs/linkage.md, "Normalisation") -----------------------------------------

APOSTROPHES = "'\u2018\u2019\u201b\u02bc\u02b9`\u00b4."
ABBREVIATIONS = {
    "rd": "road", "st": "street", "ave": "avenue", "av": "avenue", "ln": "lane", "dr": "drive",
    "cl": "close", "ct": "court", "cres": "crescent", "gdns": "gardens", "pl": "place",
    "sq": "square", "tce": "terrace", "flt": "flat",
}  # fmt: skip
POSTCODE = re.compile(
    r"(GIR0AA|[A-PR-UWYZ](?:[0-9]{1,2}|[A-HK-Y][0-9][0-9ABEHMNPRV-Y]?|[0-9][A-HJKPS-UW])"
    r"[0-9][ABD-HJLNP-UW-Z]{2})"
)
OUTWARD = re.compile(r"[A-Z]{1,2}[0-9][0-9A-Z]?")


def fold(v: str) -> str:
    for ch in APOSTROPHES:
        v = v.replace(ch, "")
    v = unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", v).casefold())
    return "".join(c for c in v if unicodedata.category(c)[0] != "M")


def words(v: str, digits: bool) -> list[str]:
    out, cur = [], ""
    for c in fold(v):
        if unicodedata.category(c)[0] == "L" or (digits and c in "0123456789"):
            cur += c
        else:
            if cur:
                out.append(cur)
            cur = ""
    return out + ([cur] if cur else [])


def n_name(v: str | None) -> list[str] | None:
    return (words(v, False) or None) if isinstance(v, str) else None


def n_address(v: str | None) -> str | None:
    if not isinstance(v, str):
        return None
    return " ".join(ABBREVIATIONS.get(w, w) for w in words(v, True)) or None


def n_postcode(v: str | None) -> str | None:
    if not isinstance(v, str):
        return None
    compact = "".join(c for c in v if not c.isspace())
    if compact.isascii() and POSTCODE.fullmatch(compact.upper()):
        c = compact.upper()
        return c[:-3] + " " + c[-3:]
    return "".join(c for c in fold(v) if c.isascii() and c.isalnum()).upper() or None


def n_date(v: str | None) -> dict[str, Any] | None:
    if not isinstance(v, str):
        return None
    t = " ".join(v.split())
    if not t:
        return None
    m = re.fullmatch(r"(\d{4})-(\d{1,2})-(\d{1,2})", t, re.ASCII) or re.fullmatch(
        r"(\d{4})(\d{2})(\d{2})", t, re.ASCII
    )
    ymd = (int(m[1]), int(m[2]), int(m[3])) if m else None
    m2 = re.fullmatch(r"(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})", t, re.ASCII)
    if m2:
        ymd = (int(m2[3]), int(m2[2]), int(m2[1]))
    if ymd:
        y, mo, d = ymd
        if 13 <= mo <= 31 and 1 <= d <= 12:
            mo, d = d, mo
        if y >= 1 and 1 <= mo <= 12 and 1 <= d <= 31:
            return {"text": f"{y:04d}-{mo:02d}-{d:02d}", "year": y, "month": mo, "day": d}
    text = " ".join(words(t, True))
    return {"text": text, "year": None, "month": None, "day": None} if text else None


SEX = {"m": "m", "male": "m", "man": "m", "boy": "m", "1": "m",
       "f": "f", "female": "f", "woman": "f", "girl": "f", "2": "f"}  # fmt: skip
SEX_UNKNOWN = {"0", "9", "u", "unknown", "not known", "not stated", "x", "n k"}


def n_sex(v: str | None) -> str | None:
    if not isinstance(v, str):
        return None
    t = " ".join(words(v, True))
    return None if not t or t in SEX_UNKNOWN else SEX.get(t, t)


NICKNAMES = {
    "bill": "william",
    "billy": "william",
    "will": "william",
    "willy": "william",
    "liam": "william",
    "jon": "john",
    "jack": "john",
    "johnny": "john",
    "jonny": "john",
    "kate": "catherine",
    "katie": "catherine",
    "kath": "catherine",
    "cathy": "catherine",
}  # an excerpt of the table in docs/linkage.md: the names used by CASES; fmt: skip


def soundex(p: str) -> str:
    codes = {c: d for d, cs in {"1": "bfpv", "2": "cgjkqsxz", "3": "dt", "4": "l", "5": "mn",
                                 "6": "r"}.items() for c in cs}  # fmt: skip
    s = [c for c in p if "a" <= c <= "z"]
    if not s:
        return p
    res, prev = s[0].upper(), codes.get(s[0], "")
    for c in s[1:]:
        code = codes.get(c, "")
        if code and code != prev:
            res += code
        if c not in "hw":
            prev = code
    return (res + "000")[:4]


# -- the keyed construction -------------------------------------------------------------------


def hkdf(key: bytes, info: str) -> bytes:
    prk = hmac.new(bytes(32), key, hashlib.sha256).digest()
    return hmac.new(prk, info.encode() + b"\x01", hashlib.sha256).digest()


def mac(key: bytes, sub: str, msg: str) -> bytes:
    k = hkdf(key, f"pseudogate/v1/encoding/{NAME}/{sub}")
    return hmac.new(k, msg.encode("utf-8"), hashlib.sha256).digest()


def bigrams(t: str) -> list[str]:
    t = "_" + t + "_"
    return [t[i : i + 2] for i in range(len(t) - 1)]


def bloom(key: bytes, field: str, grams: list[str], m: int) -> bytes:
    bits = bytearray(m // 8)
    for g in grams:
        h = mac(key, field, "q:" + g)
        for j in range(3):
            p = struct.unpack(">H", h[2 * j : 2 * j + 2])[0] % m
            bits[p // 8] |= 1 << (p % 8)
    return bytes(bits)


def record(key: bytes, values: dict[str, str | None]) -> tuple[dict[str, Any], bytes]:
    g, f = n_name(values["given_name"]), n_name(values["family_name"])
    d, s = n_date(values["date_of_birth"]), n_sex(values["sex"])
    p, a = n_postcode(values["postcode"]), n_address(values["address"])

    def tok(field: str, msg: str) -> bytes:
        return mac(key, field, msg)[:4]

    z4 = bytes(4)
    out = b""
    gphon = None
    if g:
        nick = NICKNAMES.get(g[0], g[0])
        gphon = soundex(nick)
        out += b"\x01" + bloom(key, "given_name", [x for w in g for x in bigrams(w)], 256)
        out += tok("given_name", "first:" + g[0]) + tok("given_name", "nick:" + nick)
        out += tok("given_name", "phon:" + gphon)
    else:
        out += bytes(45)
    fphon = None
    if f:
        fphon = soundex(f[0])
        flags = 1 | sum(2 << i for i in range(min(3, len(f))))
        out += bytes([flags]) + bloom(key, "family_name", [x for w in f for x in bigrams(w)], 256)
        out += b"".join(tok("family_name", "part:" + w) for w in f[:3]) + z4 * (3 - len(f[:3]))
        out += tok("family_name", "phon:" + fphon)
    else:
        out += bytes(49)
    year = dm = None
    if d and d["year"] is not None:
        year = f"{d['year']:04d}"
        lo, hi = sorted((d["month"], d["day"]))
        dm = f"{lo:02d}|{hi:02d}"
        out += (
            b"\x03"
            + tok("date_of_birth", "date:" + d["text"])
            + tok("date_of_birth", "year:" + year)
        )
        out += tok("date_of_birth", f"dm:{d['month']}") + tok("date_of_birth", f"dm:{d['day']}")
    elif d:
        out += b"\x01" + tok("date_of_birth", "date:" + d["text"]) + z4 * 3
    else:
        out += bytes(17)
    out += (b"\x01" + tok("sex", "sex:" + s)) if s else bytes(5)
    if p:
        sector = p[:-2] if " " in p else None
        outward = p.split(" ")[0] if " " in p else (p if OUTWARD.fullmatch(p) else None)
        flags = 1 | (2 if sector else 0) | (4 if outward else 0)
        out += bytes([flags]) + bloom(key, "postcode", bigrams(p.replace(" ", "")), 128)
        out += tok("postcode", "full:" + p)
        out += tok("postcode", "sector:" + sector) if sector else z4
        out += tok("postcode", "out:" + outward) if outward else z4
    else:
        out += bytes(29)
    out += (b"\x01" + bloom(key, "address", bigrams(a), 512)) if a else bytes(65)
    msgs = [
        f"fy:{fphon}|{year}" if fphon and year else None,
        f"gdm:{gphon}|{dm}" if gphon and dm else None,
        f"dob:{year}|{dm}" if year else None,
        "gf:" + "|".join(sorted((gphon, fphon))) if gphon and fphon else None,
        f"pc:{p}" if p else None,
    ]
    out += bytes([sum(1 << i for i, x in enumerate(msgs) if x)])
    out += b"".join(mac(key, "blocking", x)[:8] if x else bytes(8) for x in msgs)
    assert len(out) == 251
    normalised = {
        "given_name": g, "family_name": f, "date_of_birth": d, "sex": s, "postcode": p,
        "address": a,
    }  # fmt: skip
    return normalised, out


def seal(key: bytes, key_id: str, plain: bytes, nonce: bytes) -> bytes:
    header = bytes([1, len(key_id)]) + key_id.encode("ascii")
    aead = AESGCM(hkdf(key, f"pseudogate/v1/encoding/{NAME}/seal"))
    return header + nonce + aead.encrypt(nonce, plain, header)


#: The dataset name the vectors' cluster tokens are computed for.
CLUSTER_DATASET = "fire_visits"


def cluster_token(key: bytes, key_id: str, dataset: str, row: int, plain: bytes) -> str:
    """docs/linkage.md, "Representative tokens": a cluster without an NHS number is named by
    HMAC-SHA256 under the ``cluster`` sub-key over ``<dataset>/<row>/<hex of the record>``."""
    k = hkdf(key, f"pseudogate/v1/encoding/{NAME}/cluster")
    digest = hmac.new(k, f"{dataset}/{row}/{plain.hex()}".encode(), hashlib.sha256)
    return key_id + "_" + base64.b32encode(digest.digest()[:20]).decode("ascii").lower()


def build() -> list[dict[str, Any]]:
    vectors = []
    for i, (key_id, *vals) in enumerate(CASES):
        key = base64.b64decode(KEYS[key_id])
        values = dict(zip(FIELDS, vals, strict=True))
        normalised, plain = record(key, values)
        nonce = hashlib.sha256(b"pg-fbf-v1 vector nonce %d" % i).digest()[:12]
        vectors.append(
            {
                "key_id": key_id,
                "key_b64": KEYS[key_id],
                "input": values,
                "normalised": normalised,
                "record_hex": plain.hex(),
                "nonce_hex": nonce.hex(),
                "sealed_b64": base64.b64encode(seal(key, key_id, plain, nonce)).decode("ascii"),
                "cluster": {
                    "dataset": CLUSTER_DATASET,
                    "row": i + 1,
                    "token": cluster_token(key, key_id, CLUSTER_DATASET, i + 1, plain),
                },
            }
        )
    return vectors


if __name__ == "__main__":
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(build(), indent=2, ensure_ascii=True) + "\n", encoding="utf-8")
    print(f"wrote {len(CASES)} vectors to {OUT.relative_to(ROOT)}")
