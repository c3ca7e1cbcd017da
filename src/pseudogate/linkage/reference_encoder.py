"""A STAND-IN encoder: builds an :class:`EncodedRecords` table from identity values.

Temporary, until ``core/encoding.py`` (issue 10, section 2: the documented, hardened
encoding with published test vectors) is merged. It is keyed (every bit position and every
blocking key comes from an HMAC under the linkage key, through a :class:`Tokeniser`), but it
is NOT the documented construction and applies no hardening against frequency attacks: use it
for tests and benchmarks of the matching engine only. ``pseudogate link`` calls it through one
function, ``cli/link.py:_encode``, which is the one place to swap.

Per field:
- given_name, family_name, address, postcode: case-folded, accents and punctuation removed,
  then a Bloom filter of padded bigrams (``BLOOM_BITS[field]`` bits, ``HASHES`` positions per
  bigram, by double hashing of the bigram's keyed token);
- date_of_birth: ``YYYY-MM-DD``, ``YYYYMMDD`` or ``DD/MM/YYYY`` into day, month, year (else
  missing);
- sex: its first letter (m / f / ...), compared exactly.
Blocking keys (keyed 64-bit hashes): birth year + first letters of family and given names; full date of
birth; full postcode + sex (a district is far too big a block at scale); Soundex of family name + birth year; Soundex of given name +
Soundex of family name; the first two words of the address (house number and street, mostly).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Mapping, Sequence
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from pseudogate.core.tokens import Tokeniser
from pseudogate.linkage.records import BloomField, DateField, EncodedRecords, ExactField

__all__ = ["BLOOM_BITS", "FIELDS", "STANDIN_DOMAIN", "encode_records", "parse_date", "soundex"]

#: The identity fields of issue 10 (the names ``core/identity.py`` will define).
FIELDS = ("given_name", "family_name", "date_of_birth", "sex", "postcode", "address")
BLOOM_BITS: dict[str, int] = {"given_name": 512, "family_name": 512, "postcode": 256,
                              "address": 1024}
HASHES = 12
#: The fields each blocking key is made of (in the column order of the keys).
BLOCKING_FIELDS: tuple[frozenset[str], ...] = (
    frozenset({"date_of_birth", "family_name", "given_name"}),
    frozenset({"date_of_birth"}),
    frozenset({"postcode", "sex"}),
    frozenset({"family_name", "date_of_birth"}),
    frozenset({"given_name", "family_name"}),
    frozenset({"address"}),
)
#: Token domain of the stand-in's keyed hashes (derived from the linkage key).
STANDIN_DOMAIN = "linkage-encoding-standin"

_NON_ALNUM = re.compile(r"[^0-9a-z ]+")
_SPACES = re.compile(r" +")
_DATE_ISO = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})")
_DATE_COMPACT = re.compile(r"(\d{4})(\d{2})(\d{2})")
_DATE_UK = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})")


def clean(value: str | None) -> str:
    """Case-folded, accents and punctuation removed, spaces collapsed ('' when missing)."""
    if not value:
        return ""
    text = unicodedata.normalize("NFKD", value.casefold())
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return _SPACES.sub(" ", _NON_ALNUM.sub(" ", text)).strip()


def parse_date(value: str | None) -> tuple[int, int, int]:
    """(day, month, year) of a date in one of the accepted forms, else (0, 0, 0)."""
    text = (value or "").strip()
    if (m := _DATE_ISO.fullmatch(text)) or (m := _DATE_COMPACT.fullmatch(text)):
        y, mo, d = (int(g) for g in m.groups())
    elif m := _DATE_UK.fullmatch(text):
        d, mo, y = (int(g) for g in m.groups())
    else:
        return 0, 0, 0
    if not (1 <= d <= 31 and 1 <= mo <= 31 and 1 <= y <= 9999):
        return 0, 0, 0
    return d, mo, y


_SOUNDEX = {c: str(d) for d, letters in enumerate(
    ("aeiouyhw", "bfpv", "cgjkqsxz", "dt", "l", "mn", "r")) for c in letters}


@lru_cache(maxsize=1 << 16)
def soundex(name: str) -> str:
    """American Soundex of a cleaned name ('' when it has no letter)."""
    letters = [c for c in name if "a" <= c <= "z"]
    if not letters:
        return ""
    out, last = letters[0], _SOUNDEX[letters[0]]
    for c in letters[1:]:
        code = _SOUNDEX[c]
        if code != "0" and code != last:
            out += code
        if c not in "hw":
            last = code
    return (out + "000")[:4]


def _digest(token: str, size: int) -> bytes:
    return hashlib.blake2b(token.encode("ascii"), digest_size=size).digest()


def _hashes64(tokeniser: Tokeniser, values: Sequence[str]) -> npt.NDArray[np.uint64]:
    """Keyed 64-bit hashes of strings ('' -> 0), each distinct value tokenised once."""
    uniq, inverse = np.unique(np.asarray(values, dtype=object).astype(str), return_inverse=True)
    tokens = tokeniser.tokens([str(u) for u in uniq])
    h = np.array([int.from_bytes(_digest(t, 8), "little") | 1 for t in tokens], dtype=np.uint64)
    h[uniq == ""] = 0
    return h[inverse]


def _bigrams(text: str) -> list[str]:
    padded = f"_{text}_"
    return [padded[i:i + 2] for i in range(len(padded) - 1)]


def _bloom(tokeniser: Tokeniser, field: str, cleaned: Sequence[str]) -> BloomField:
    width = BLOOM_BITS[field]
    uniq, inverse = np.unique(np.asarray(cleaned, dtype=object).astype(str), return_inverse=True)
    grams = sorted({g for u in uniq for g in _bigrams(str(u)) if u})
    gram_id = {g: i for i, g in enumerate(grams)}
    tokens = tokeniser.tokens([f"bloom/{field}/{g}" for g in grams])
    positions = np.zeros((len(grams), HASHES), dtype=np.int64)
    steps = np.arange(HASHES, dtype=np.int64)
    for i, t in enumerate(tokens):
        d = _digest(t, 8)
        h1, h2 = int.from_bytes(d[:4], "little"), int.from_bytes(d[4:8], "little") | 1
        positions[i] = (h1 + steps * h2) % width
    dense = np.zeros((len(uniq), width), dtype=bool)
    rows: list[int] = []
    ids: list[int] = []
    for r, u in enumerate(uniq):
        if u:
            for g in _bigrams(str(u)):
                rows.append(r)
                ids.append(gram_id[g])
    if rows:
        dense[np.asarray(rows)[:, None], positions[np.asarray(ids)]] = True
    packed = np.packbits(dense, axis=1)
    return BloomField(packed[inverse], (uniq != "")[inverse])


def encode_records(
    values: Mapping[str, Sequence[str | None]],
    *,
    nhs_tokens: Sequence[str | None] | None,
    source: Sequence[int],
    row: Sequence[int],
    tokeniser: Tokeniser,
) -> EncodedRecords:
    """Encode records given per identity field its raw values (missing fields: all None).

    ``tokeniser`` must be ``keyring.linkage_tokeniser(STANDIN_DOMAIN)``; ``nhs_tokens`` are
    the records' NHS linkage tokens (None when absent).
    """
    n = len(source)
    get = {f: list(values.get(f) or [None] * n) for f in FIELDS}
    cleaned = {f: [clean(v) for v in get[f]] for f in FIELDS if f != "date_of_birth"}
    dates = np.array([parse_date(v) for v in get["date_of_birth"]], dtype=np.int16).reshape(n, 3)
    sex = [c[:1] for c in cleaned["sex"]]
    sex_codes = np.array([ord(c) if c else -1 for c in sex], dtype=np.int64)
    years = [str(y) if y else "" for y in dates[:, 2].tolist()]
    fam, giv = cleaned["family_name"], cleaned["given_name"]
    fam_sx = [soundex(f) for f in fam]
    giv_sx = [soundex(g) for g in giv]

    def key(j: int, parts: Sequence[Sequence[str]]) -> list[str]:
        # a key exists only when every part is present
        return [f"block/{j}/" + "|".join(p) if all(p) else "" for p in zip(*parts, strict=True)]

    dob = ["" if not y else f"{d}-{m}-{y}" for d, m, y in dates.tolist()]
    keys = [
        key(0, [years, [f[:1] for f in fam], [g[:1] for g in giv]]),
        key(1, [dob]),
        key(2, [cleaned["postcode"], [s or "?" for s in sex]]),
        key(3, [fam_sx, years]),
        key(4, [giv_sx, fam_sx]),
        key(5, [[" ".join(a.split(" ")[:2]) for a in cleaned["address"]]]),
    ]
    blocking = np.stack([_hashes64(tokeniser, k) for k in keys], axis=1)
    if nhs_tokens is None:
        nhs = np.full(n, -1, dtype=np.int64)
    else:
        arr = np.asarray([t or "" for t in nhs_tokens], dtype=object).astype(str)
        uniq, inverse = np.unique(arr, return_inverse=True)
        codes = np.arange(len(uniq), dtype=np.int64)
        codes[uniq == ""] = -1
        nhs = codes[inverse]
    return EncodedRecords(
        key_id=tokeniser.key_id,
        source=np.asarray(source, dtype=np.int32),
        row=np.asarray(row, dtype=np.int64),
        nhs=nhs,
        blooms={f: _bloom(tokeniser, f, cleaned[f]) for f in BLOOM_BITS},
        dates={"date_of_birth": DateField(*(dates[:, i].copy() for i in range(3)))},
        exact={"sex": ExactField(sex_codes)},
        blocking=blocking,
        blocking_fields=BLOCKING_FIELDS,
    )
