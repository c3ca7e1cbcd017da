"""Keyed, sealed linkage encodings of identity fields: ``pg-fbf-v1`` (docs/linkage.md).

One record's identity fields become a fixed 243-byte *record* of keyed features: field-level
Bloom filters of q-grams whose bit positions come from HMAC-SHA256 (Schnell et al. 2009),
4-byte HMAC tokens of field parts (first name, nickname group, Soundex, surname parts, date
parts, postcode sector and district) and four 8-byte blocking keys. Every feature is keyed by
a sub-key of the ``linkage`` key derived with HKDF (``pseudogate/v1/encoding/pg-fbf-v1/...``).

What is stored is the record *sealed* with AES-256-GCM under another sub-key and a random
nonce: identical records give unrelated stored bytes, so a frequency or pattern attack on what
is stored has nothing to align. Records are opened only in memory, for matching.

An :class:`Encoder` is built by the keyring (``Keyring.linkage_encoder``); it never exposes
key bytes. Records carry the key id; :func:`require_same_key` refuses to compare records made
under different keys.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from pseudogate.core.errors import FailedPrecondition, InvalidInput
from pseudogate.core.identity import (
    DateParts,
    IdentityField,
    nickname_key,
    normalise_address,
    normalise_date,
    normalise_name,
    normalise_postcode,
    normalise_sex,
    postcode_outward,
    postcode_sector,
    soundex,
)
from pseudogate.core.tokens import derive_key

__all__ = [
    "BLOCKING_KEYS",
    "ENCODING_NAME",
    "INFO_PREFIX",
    "RECORD_BYTES",
    "RECORD_DTYPE",
    "SUBKEYS",
    "EncodedRecords",
    "Encoder",
    "EncodingKeyMismatch",
    "blocking_keys",
    "compare",
    "derive_encoder",
    "dice",
    "from_base64",
    "key_id_of",
    "require_same_key",
    "to_base64",
]

ENCODING_NAME = "pg-fbf-v1"
INFO_PREFIX = "pseudogate/v1/encoding/" + ENCODING_NAME + "/"
FORMAT_VERSION = 1
NONCE_BYTES = 12
TAG_BYTES = 16
TOKEN_BYTES = 4
BLOCK_KEY_BYTES = 8

#: Sub-keys: one per identity field, one for blocking keys, one for sealing.
SUBKEYS: tuple[str, ...] = (*(f.value for f in IdentityField), "blocking", "seal")

#: Bloom filter (bits m, positions k) per field.
FILTERS: dict[IdentityField, tuple[int, int]] = {
    IdentityField.GIVEN_NAME: (256, 3),
    IdentityField.FAMILY_NAME: (256, 3),
    IdentityField.POSTCODE: (128, 3),
    IdentityField.ADDRESS: (512, 3),
}

#: The blocking keys, in slot order, and the components each joins.
BLOCKING_KEYS: tuple[tuple[str, str], ...] = (
    ("fy", "Soundex of the family name's first part | year of birth"),
    ("gdm", "Soundex of the given name's nickname group | min(day, month) | max(day, month)"),
    ("py", "postcode | year of birth"),
    ("dob", "year of birth | min(day, month) | max(day, month)"),
)

_U4 = "<u4"
RECORD_DTYPE = np.dtype(
    [
        ("given_flags", "u1"),
        ("given_bf", "u1", (32,)),
        ("given_first", _U4),
        ("given_nick", _U4),
        ("given_phon", _U4),
        ("family_flags", "u1"),
        ("family_bf", "u1", (32,)),
        ("family_part", _U4, (3,)),
        ("family_phon", _U4),
        ("dob_flags", "u1"),
        ("dob_date", _U4),
        ("dob_year", _U4),
        ("dob_month", _U4),
        ("dob_day", _U4),
        ("sex_flags", "u1"),
        ("sex", _U4),
        ("postcode_flags", "u1"),
        ("postcode_bf", "u1", (16,)),
        ("postcode_full", _U4),
        ("postcode_sector", _U4),
        ("postcode_out", _U4),
        ("address_flags", "u1"),
        ("address_bf", "u1", (64,)),
        ("block_flags", "u1"),
        ("block", "<u8", (4,)),
    ]
)
RECORD_BYTES = RECORD_DTYPE.itemsize  # 243
_SEGMENTS: dict[IdentityField, tuple[int, int]] = {}  # field -> (offset, length) in a record


def _segment_bounds() -> None:
    names = RECORD_DTYPE.names or ()
    prefix = {
        IdentityField.GIVEN_NAME: "given_",
        IdentityField.FAMILY_NAME: "family_",
        IdentityField.DATE_OF_BIRTH: "dob_",
        IdentityField.SEX: "sex",
        IdentityField.POSTCODE: "postcode_",
        IdentityField.ADDRESS: "address_",
    }
    for field, p in prefix.items():
        mine = [n for n in names if n.startswith(p)]
        start = RECORD_DTYPE.fields[mine[0]][1]  # type: ignore[index]
        last = RECORD_DTYPE.fields[mine[-1]]  # type: ignore[index]
        _SEGMENTS[field] = (start, last[1] + last[0].itemsize - start)


_segment_bounds()
_BLOCK_OFFSET = RECORD_DTYPE.fields["block_flags"][1]  # type: ignore[index]


class EncodingKeyMismatch(FailedPrecondition):
    """Encodings made under different linkage keys (or encodings) cannot be compared."""


@dataclass(frozen=True, slots=True)
class EncodedRecords:
    """Opened (in-memory) records: a structured array of :data:`RECORD_DTYPE` and the key id."""

    key_id: str
    records: npt.NDArray[np.void]
    encoding: str = ENCODING_NAME

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: slice | npt.NDArray[np.intp] | Sequence[int]) -> EncodedRecords:
        return EncodedRecords(self.key_id, self.records[index], self.encoding)

    @staticmethod
    def concat(parts: Sequence[EncodedRecords], *, names: Sequence[str] | None = None) -> EncodedRecords:
        """Records of several batches in order; all must share one key (else refused)."""
        if not parts:
            raise InvalidInput("nothing to concatenate")
        require_same_key(*parts, names=names)
        return EncodedRecords(
            parts[0].key_id, np.concatenate([p.records for p in parts]), parts[0].encoding
        )


def require_same_key(*batches: EncodedRecords, names: Sequence[str] | None = None) -> str:
    """The common key id of ``batches``; raises :class:`EncodingKeyMismatch` naming them if not.

    ``names`` (for example dataset names) label the batches in the error; never values.
    """
    labels = list(names) if names is not None else [f"#{i + 1}" for i in range(len(batches))]
    first = batches[0]
    for label, b in zip(labels, batches, strict=True):
        if b.key_id != first.key_id or b.encoding != first.encoding:
            raise EncodingKeyMismatch(
                f"encodings of {labels[0]} ({first.encoding}, key {first.key_id!r}) and "
                f"{label} ({b.encoding}, key {b.key_id!r}) were made under different keys or "
                "encodings and cannot be compared; the provider must resubmit under the current "
                "linkage key"
            )
    return first.key_id


def derive_encoder(*, key_id: str, material: bytes) -> Encoder:
    """The encoder for a linkage key (used by the keyring and by tests with published keys)."""
    return Encoder(
        key_id=key_id, subkeys={name: derive_key(material, INFO_PREFIX + name) for name in SUBKEYS}
    )


_Mac = Callable[[str], bytes]


class Encoder:
    """Encodes, seals and opens ``pg-fbf-v1`` records under one linkage key."""

    __slots__ = ("_aead", "_grams", "_macs", "key_id")

    def __init__(self, *, key_id: str, subkeys: Mapping[str, bytes]) -> None:
        if set(subkeys) != set(SUBKEYS):
            raise InvalidInput("encoder sub-keys incomplete")
        if not 1 <= len(key_id.encode("ascii")) <= 255:
            raise InvalidInput("key id must be 1..255 ASCII characters")
        self.key_id = key_id
        self._macs = {n: hmac.new(k, digestmod=hashlib.sha256) for n, k in subkeys.items()}
        self._aead = AESGCM(subkeys["seal"])
        # field -> q-gram -> filter mask (an int with k bits set); grows with the vocabulary
        self._grams: dict[str, dict[str, int]] = {f.value: {} for f in FILTERS}

    def __repr__(self) -> str:
        return f"Encoder(key_id={self.key_id!r}, encoding={ENCODING_NAME!r})"

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("Encoder holds key material and cannot be pickled")

    # -- features ---------------------------------------------------------------------------

    def _mac(self, subkey: str, message: str) -> bytes:
        m = self._macs[subkey].copy()
        m.update(message.encode("utf-8", "surrogatepass"))
        return m.digest()

    def _token(self, field: IdentityField, role: str, value: str) -> bytes:
        return self._mac(field.value, role + ":" + value)[:TOKEN_BYTES]

    def _filter(self, field: IdentityField, grams: Iterable[str]) -> bytes:
        m, k = FILTERS[field]
        cache = self._grams[field.value]
        bits = 0
        for g in grams:
            mask = cache.get(g)
            if mask is None:
                h = self._mac(field.value, "q:" + g)
                mask = 0
                for j in range(k):
                    mask |= 1 << (int.from_bytes(h[2 * j : 2 * j + 2], "big") % m)
                cache[g] = mask
            bits |= mask
        return bits.to_bytes(m // 8, "little")

    # -- one field's segment (bytes) and its blocking components ----------------------------

    def _given(self, raw: str | None) -> tuple[bytes, str | None]:
        parts = normalise_name(raw)
        if parts is None:
            return bytes(_SEGMENTS[IdentityField.GIVEN_NAME][1]), None
        f = IdentityField.GIVEN_NAME
        first = parts[0]
        phon = soundex(nickname_key(first))
        seg = (
            b"\x01"
            + self._filter(f, _name_grams(parts))
            + self._token(f, "first", first)
            + self._token(f, "nick", nickname_key(first))
            + self._token(f, "phon", phon)
        )
        return seg, phon

    def _family(self, raw: str | None) -> tuple[bytes, str | None]:
        parts = normalise_name(raw)
        if parts is None:
            return bytes(_SEGMENTS[IdentityField.FAMILY_NAME][1]), None
        f = IdentityField.FAMILY_NAME
        slots = parts[:3]
        flags = 1
        toks = b""
        for i in range(3):
            if i < len(slots):
                flags |= 2 << i
                toks += self._token(f, "part", slots[i])
            else:
                toks += bytes(TOKEN_BYTES)
        phon = soundex(parts[0])
        seg = (
            bytes([flags])
            + self._filter(f, _name_grams(parts))
            + toks
            + self._token(f, "phon", phon)
        )
        return seg, phon

    def _dob(self, raw: str | None) -> tuple[bytes, DateParts | None]:
        d = normalise_date(raw)
        if d is None:
            return bytes(_SEGMENTS[IdentityField.DATE_OF_BIRTH][1]), None
        f = IdentityField.DATE_OF_BIRTH
        date = self._token(f, "date", d.text)
        if d.year is None or d.month is None or d.day is None:
            return b"\x01" + date + bytes(3 * TOKEN_BYTES), d
        seg = (
            b"\x03"
            + date
            + self._token(f, "year", f"{d.year:04d}")
            + self._token(f, "dm", str(d.month))
            + self._token(f, "dm", str(d.day))
        )
        return seg, d

    def _sex(self, raw: str | None) -> tuple[bytes, None]:
        s = normalise_sex(raw)
        if s is None:
            return bytes(_SEGMENTS[IdentityField.SEX][1]), None
        return b"\x01" + self._token(IdentityField.SEX, "sex", s), None

    def _postcode(self, raw: str | None) -> tuple[bytes, str | None]:
        p = normalise_postcode(raw)
        if p is None:
            return bytes(_SEGMENTS[IdentityField.POSTCODE][1]), None
        f = IdentityField.POSTCODE
        sector, outward = postcode_sector(p), postcode_outward(p)
        flags = 1 | (2 if sector is not None else 0) | (4 if outward is not None else 0)
        seg = (
            bytes([flags])
            + self._filter(f, _grams(p.replace(" ", "")))
            + self._token(f, "full", p)
            + (self._token(f, "sector", sector) if sector is not None else bytes(TOKEN_BYTES))
            + (self._token(f, "out", outward) if outward is not None else bytes(TOKEN_BYTES))
        )
        return seg, p

    def _address(self, raw: str | None) -> tuple[bytes, None]:
        a = normalise_address(raw)
        if a is None:
            return bytes(_SEGMENTS[IdentityField.ADDRESS][1]), None
        return b"\x01" + self._filter(IdentityField.ADDRESS, _grams(a)), None

    # -- records ----------------------------------------------------------------------------

    def encode(
        self, columns: Mapping[IdentityField | str, Sequence[str | None]], *, n: int | None = None
    ) -> EncodedRecords:
        """Encode a batch given as columns (field -> values; absent fields are missing).

        Never raises on values: anything that is not a usable string is missing. Each distinct
        value of a field is normalised and encoded once per call.
        """
        cols = {IdentityField(k): v for k, v in columns.items()}
        if n is None:
            lengths = {len(v) for v in cols.values()}
            if len(lengths) != 1:
                raise InvalidInput("identity columns must have one length")
            (n,) = lengths
        out = np.zeros((n, RECORD_BYTES), dtype=np.uint8)
        comps: dict[IdentityField, list[object]] = {}
        makers: dict[IdentityField, Callable[[str | None], tuple[bytes, object]]] = {
            IdentityField.GIVEN_NAME: self._given,
            IdentityField.FAMILY_NAME: self._family,
            IdentityField.DATE_OF_BIRTH: self._dob,
            IdentityField.SEX: self._sex,
            IdentityField.POSTCODE: self._postcode,
            IdentityField.ADDRESS: self._address,
        }
        for field, values in cols.items():
            if len(values) != n:
                raise InvalidInput("identity columns must have one length")
            make = makers[field]
            cache: dict[object, tuple[bytes, object]] = {}
            segs: list[bytes] = []
            comp: list[object] = []
            for v in values:
                key = v if isinstance(v, str) else None
                hit = cache.get(key)
                if hit is None:
                    hit = cache[key] = make(key)
                segs.append(hit[0])
                comp.append(hit[1])
            start, length = _SEGMENTS[field]
            if n:
                out[:, start : start + length] = np.frombuffer(b"".join(segs), np.uint8).reshape(
                    n, length
                )
            comps[field] = comp
        out[:, _BLOCK_OFFSET:] = np.frombuffer(
            b"".join(self._blocking(comps, n)), np.uint8
        ).reshape(n, RECORD_BYTES - _BLOCK_OFFSET)
        return EncodedRecords(self.key_id, out.view(RECORD_DTYPE).reshape(n))

    def encode_records(
        self, records: Iterable[Mapping[IdentityField | str, str | None]]
    ) -> EncodedRecords:
        """Encode records given as mappings (a convenience over :meth:`encode`)."""
        rows = list(records)
        cols: dict[IdentityField | str, list[str | None]] = {
            f: [r.get(f.value, r.get(f)) for r in rows] for f in IdentityField
        }
        return self.encode(cols, n=len(rows))

    def _blocking(self, comps: Mapping[IdentityField, list[object]], n: int) -> list[bytes]:
        none: list[object] = [None] * n
        given = comps.get(IdentityField.GIVEN_NAME, none)
        family = comps.get(IdentityField.FAMILY_NAME, none)
        dob = comps.get(IdentityField.DATE_OF_BIRTH, none)
        post = comps.get(IdentityField.POSTCODE, none)
        cache: dict[str, bytes] = {}
        empty = bytes(BLOCK_KEY_BYTES)
        out: list[bytes] = []
        for g, f, d, p in zip(given, family, dob, post, strict=True):
            year = dm = None
            if isinstance(d, DateParts) and d.year is not None:
                lo, hi = sorted((d.month or 0, d.day or 0))
                year, dm = f"{d.year:04d}", f"{lo:02d}|{hi:02d}"
            messages = (
                f"fy:{f}|{year}" if f is not None and year is not None else None,
                f"gdm:{g}|{dm}" if g is not None and dm is not None else None,
                f"py:{p}|{year}" if p is not None and year is not None else None,
                f"dob:{year}|{dm}" if year is not None else None,
            )
            flags = 0
            keys = b""
            for i, msg in enumerate(messages):
                if msg is None:
                    keys += empty
                    continue
                flags |= 1 << i
                k = cache.get(msg)
                if k is None:
                    k = cache[msg] = self._mac("blocking", msg)[:BLOCK_KEY_BYTES]
                keys += k
            out.append(bytes([flags]) + keys)
        return out

    # -- sealing ----------------------------------------------------------------------------

    def _header(self) -> bytes:
        kid = self.key_id.encode("ascii")
        return bytes([FORMAT_VERSION, len(kid)]) + kid

    def seal(self, encoded: EncodedRecords) -> list[bytes]:
        """The stored form: each record sealed under a fresh random nonce."""
        return self.seal_with_nonces(encoded, secrets.token_bytes(NONCE_BYTES * len(encoded)))

    def seal_with_nonces(self, encoded: EncodedRecords, nonces: bytes) -> list[bytes]:
        """:meth:`seal` with given nonces (12 bytes per record); for test vectors only."""
        require_same_key(_key_only(self.key_id), encoded)
        if len(nonces) != NONCE_BYTES * len(encoded):
            raise InvalidInput("need 12 nonce bytes per record")
        header = self._header()
        plain = encoded.records.tobytes()
        enc = self._aead.encrypt
        out: list[bytes] = []
        for i in range(len(encoded)):
            nonce = nonces[NONCE_BYTES * i : NONCE_BYTES * (i + 1)]
            body = plain[RECORD_BYTES * i : RECORD_BYTES * (i + 1)]
            out.append(header + nonce + enc(nonce, body, header))
        return out

    def open(self, sealed: Sequence[bytes], *, name: str = "the encodings") -> EncodedRecords:
        """Open stored encodings made under this encoder's key; refuses any other key."""
        header = self._header()
        h = len(header)
        dec = self._aead.decrypt
        bodies: list[bytes] = []
        for i, blob in enumerate(sealed):
            if blob[:h] != header:
                other = key_id_of(blob)
                raise EncodingKeyMismatch(
                    f"{name}: encoding {i + 1} was made under key {other!r}, not "
                    f"{self.key_id!r}; encodings under different keys cannot be compared"
                )
            try:
                bodies.append(dec(blob[h : h + NONCE_BYTES], blob[h + NONCE_BYTES :], header))
            except (InvalidTag, ValueError):
                raise InvalidInput(f"{name}: encoding {i + 1} is damaged (does not open)") from None
        raw = np.frombuffer(b"".join(bodies), dtype=RECORD_DTYPE)
        return EncodedRecords(self.key_id, raw.copy())


def _key_only(key_id: str) -> EncodedRecords:
    return EncodedRecords(key_id, np.zeros(0, RECORD_DTYPE))


def key_id_of(blob: bytes) -> str:
    """The key id a stored encoding was sealed under (readable without the key)."""
    if len(blob) < 2 or blob[0] != FORMAT_VERSION or len(blob) < 2 + blob[1]:
        raise InvalidInput(f"not a {ENCODING_NAME} encoding")
    try:
        return blob[2 : 2 + blob[1]].decode("ascii")
    except UnicodeDecodeError:
        raise InvalidInput(f"not a {ENCODING_NAME} encoding") from None


def to_base64(sealed: Iterable[bytes]) -> list[str]:
    return [base64.b64encode(b).decode("ascii") for b in sealed]


def from_base64(texts: Iterable[str]) -> list[bytes]:
    return [base64.b64decode(t, validate=True) for t in texts]


def _grams(text: str) -> list[str]:
    """Bigrams of ``_`` + text + ``_``."""
    padded = "_" + text + "_"
    return [padded[i : i + 2] for i in range(len(padded) - 1)]


def _name_grams(parts: Sequence[str]) -> list[str]:
    return [g for p in parts for g in _grams(p)]


# -- comparison ---------------------------------------------------------------------------------

def _popcount(bits: npt.NDArray[np.uint8]) -> npt.NDArray[np.int64]:
    words = np.ascontiguousarray(bits).view(np.uint64)
    return np.bitwise_count(words).sum(axis=-1, dtype=np.int64)  # type: ignore[no-any-return]


def dice(a: npt.NDArray[np.uint8], b: npt.NDArray[np.uint8]) -> npt.NDArray[np.float64]:
    """Dice coefficient 2|A & B| / (|A| + |B|) of filters (rows of bytes); 0 when both empty."""
    both = _popcount(np.bitwise_and(a, b))
    total = _popcount(a) + _popcount(b)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, 2.0 * both / np.maximum(total, 1), 0.0)


def blocking_keys(encoded: EncodedRecords) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.bool_]]:
    """The (n, 4) blocking keys as integers, and which are present (slot order of BLOCKING_KEYS)."""
    r = encoded.records
    flags = r["block_flags"]
    present: npt.NDArray[np.bool_] = ((flags[:, None] >> np.arange(4, dtype=np.uint8)) & 1) == 1
    return r["block"].copy(), present


def compare(
    a: EncodedRecords,
    ia: npt.NDArray[np.intp],
    b: EncodedRecords,
    ib: npt.NDArray[np.intp],
    *,
    names: Sequence[str] = ("a", "b"),
) -> dict[str, npt.NDArray[np.float64]]:
    """Per-field evidence for the pairs (a[ia[i]], b[ib[i]]): NaN where either side is missing.

    - ``given_dice``, ``family_dice``, ``postcode_dice``, ``address_dice``: Dice of the filters.
    - ``given_first``, ``given_nick``, ``given_phon``, ``family_phon``, ``sex``,
      ``postcode_full``, ``postcode_sector``, ``postcode_out``, ``dob_date``: 1.0 when equal.
    - ``family_part``: 1.0 when any surname part equals any part of the other side.
    - ``dob``: 1.0 same date; 0.75 day and month swapped (same year); 0.5 two of year, month,
      day agree; 0.25 one agrees; 0.0 none.
    """
    require_same_key(a, b, names=names)
    ra, rb = a.records[ia], b.records[ib]
    out: dict[str, npt.NDArray[np.float64]] = {}

    def has(field: str, bit: int = 1) -> npt.NDArray[np.bool_]:
        both: npt.NDArray[np.bool_] = ((ra[field] & bit) != 0) & ((rb[field] & bit) != 0)
        return both

    def eq(col: str, present: npt.NDArray[np.bool_]) -> npt.NDArray[np.float64]:
        return np.where(present, (ra[col] == rb[col]).astype(np.float64), np.nan)

    for field in ("given", "family", "postcode", "address"):
        p = has(field + "_flags")
        out[field + "_dice"] = np.where(p, dice(ra[field + "_bf"], rb[field + "_bf"]), np.nan)
    g = has("given_flags")
    for col in ("given_first", "given_nick", "given_phon"):
        out[col] = eq(col, g)
    fam = has("family_flags")
    out["family_phon"] = eq("family_phon", fam)
    pa, pb = ra["family_part"], rb["family_part"]
    va = (ra["family_flags"][:, None] >> np.arange(1, 4, dtype=np.uint8)) & 1
    vb = (rb["family_flags"][:, None] >> np.arange(1, 4, dtype=np.uint8)) & 1
    same = (pa[:, :, None] == pb[:, None, :]) & (va[:, :, None] == 1) & (vb[:, None, :] == 1)
    out["family_part"] = np.where(fam, same.any(axis=(1, 2)).astype(np.float64), np.nan)
    out["sex"] = eq("sex", has("sex_flags"))
    out["postcode_full"] = eq("postcode_full", has("postcode_flags"))
    out["postcode_sector"] = eq("postcode_sector", has("postcode_flags", 2))
    out["postcode_out"] = eq("postcode_out", has("postcode_flags", 4))
    out["dob_date"] = eq("dob_date", has("dob_flags"))
    parsed = has("dob_flags", 2)
    y = ra["dob_year"] == rb["dob_year"]
    m = ra["dob_month"] == rb["dob_month"]
    d = ra["dob_day"] == rb["dob_day"]
    swap = (ra["dob_month"] == rb["dob_day"]) & (ra["dob_day"] == rb["dob_month"])
    agree = y.astype(np.int64) + m + d
    level = np.select(
        [y & m & d, y & swap, agree == 2, agree == 1], [1.0, 0.75, 0.5, 0.25], default=0.0
    )
    same_text = ra["dob_date"] == rb["dob_date"]
    out["dob"] = np.where(
        parsed, level, np.where(has("dob_flags"), same_text.astype(np.float64), np.nan)
    )
    return out
