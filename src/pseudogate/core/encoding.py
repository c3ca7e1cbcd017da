"""Keyed, sealed linkage encodings of identity fields: ``pg-fbf-v1`` (docs/linkage.md).

One record's identity fields become a fixed 251-byte *record* of keyed features: field-level
Bloom filters of q-grams whose bit positions come from HMAC-SHA256 (Schnell et al. 2009),
4-byte HMAC tokens of field parts (first name, nickname group, Soundex, surname parts, date
parts, postcode sector and district) and five 8-byte blocking keys. Every feature is keyed by
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

from pseudogate.core._accel import fastmac
from pseudogate.core.errors import FailedPrecondition, InvalidInput
from pseudogate.core.identity import (
    _ABBREVIATIONS,
    _NICKNAMES,
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
    ("dob", "year of birth | min(day, month) | max(day, month)"),
    ("gf", "the given name's and the family name's Soundex codes (as above), sorted, joined"),
    ("pc", "postcode"),
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
        ("block", "<u8", (5,)),
    ]
)
RECORD_BYTES = RECORD_DTYPE.itemsize  # 251
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
    def concat(
        parts: Sequence[EncodedRecords], *, names: Sequence[str] | None = None
    ) -> EncodedRecords:
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
    if not batches:
        raise InvalidInput("no encodings to compare")
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


_GRAM_CACHE_LIMIT = 200_000

#: Components of each blocking key, in slot order (docs/linkage.md, "Blocking keys").
_BLOCKING_COMPONENTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("fy", ("F", "Y")),
    ("gdm", ("G", "DM")),
    ("dob", ("Y", "DM")),
    ("gf", ("G", "F")),
    ("pc", ("P",)),
)

#: What one field value contributes, before any key is used: (flags byte, the padded strings
#: whose bigrams make its filter, token messages in slot order with None for an empty slot, blocking component).
_Spec = tuple[int, list[str], list[str | None], object]
_MISSING: _Spec = (0, [], [], None)


def _spec_given(raw: str | None) -> _Spec:
    parts = normalise_name(raw)
    if parts is None:
        return _MISSING
    first = parts[0]
    nick = nickname_key(first)
    phon = soundex(nick)
    return 1, _padded(parts), ["first:" + first, "nick:" + nick, "phon:" + phon], phon


def _spec_family(raw: str | None) -> _Spec:
    parts = normalise_name(raw)
    if parts is None:
        return _MISSING
    slots: list[str | None] = ["part:" + p for p in parts[:3]]
    flags = 1
    for i in range(len(slots)):
        flags |= 2 << i
    slots += [None] * (3 - len(slots))
    phon = soundex(parts[0])
    return flags, _padded(parts), [*slots, "phon:" + phon], phon


def _spec_dob(raw: str | None) -> _Spec:
    d = normalise_date(raw)
    if d is None:
        return _MISSING
    if d.year is None or d.month is None or d.day is None:
        return 1, [], ["date:" + d.text, None, None, None], None
    text, month, day = d.text, d.month, d.day
    year = text[:4]  # the text of a date with parts is YYYY-MM-DD
    dm = f"{text[5:7]}|{text[8:10]}" if month <= day else f"{text[8:10]}|{text[5:7]}"
    return 3, [], ["date:" + text, "year:" + year, f"dm:{month}", f"dm:{day}"], (year, dm)


def _spec_sex(raw: str | None) -> _Spec:
    s = normalise_sex(raw)
    return _MISSING if s is None else (1, [], ["sex:" + s], None)


def _spec_postcode(raw: str | None) -> _Spec:
    p = normalise_postcode(raw)
    if p is None:
        return _MISSING
    if " " in p:  # a valid postcode "OUTWARD INWARD": sector and outward code are prefixes
        return (
            7,
            ["_" + p.replace(" ", "") + "_"],
            ["full:" + p, "sector:" + p[:-2], "out:" + p[:-4]],
            p,
        )
    sector, outward = postcode_sector(p), postcode_outward(p)
    flags = 1 | (2 if sector is not None else 0) | (4 if outward is not None else 0)
    toks = [
        "full:" + p,
        None if sector is None else "sector:" + sector,
        None if outward is None else "out:" + outward,
    ]
    return flags, _padded([p.replace(" ", "")]), toks, p


def _spec_address(raw: str | None) -> _Spec:
    a = normalise_address(raw)
    return _MISSING if a is None else (1, _padded([a]), [], None)


_SPECS: dict[IdentityField, Callable[[str | None], _Spec]] = {
    IdentityField.GIVEN_NAME: _spec_given,
    IdentityField.FAMILY_NAME: _spec_family,
    IdentityField.DATE_OF_BIRTH: _spec_dob,
    IdentityField.SEX: _spec_sex,
    IdentityField.POSTCODE: _spec_postcode,
    IdentityField.ADDRESS: _spec_address,
}


#: The field codes of the C accelerator's ``encode_column``.
_C_KIND: dict[IdentityField, int] = {
    IdentityField.GIVEN_NAME: 0,
    IdentityField.FAMILY_NAME: 1,
    IdentityField.DATE_OF_BIRTH: 2,
    IdentityField.SEX: 3,
    IdentityField.POSTCODE: 4,
    IdentityField.ADDRESS: 5,
}


class Encoder:
    """Encodes, seals and opens ``pg-fbf-v1`` records under one linkage key."""

    __slots__ = ("_aead", "_bigrams", "_fast", "_grams", "_macs_py", "key_id")

    def __init__(self, *, key_id: str, subkeys: Mapping[str, bytes]) -> None:
        if set(subkeys) != set(SUBKEYS):
            raise InvalidInput("encoder sub-keys incomplete")
        if not 1 <= len(key_id.encode("ascii")) <= 255:
            raise InvalidInput("key id must be 1..255 ASCII characters")
        self.key_id = key_id
        self._macs_py = {n: hmac.new(k, digestmod=hashlib.sha256) for n, k in subkeys.items()}
        self._fast = {
            n: fastmac.HmacSha256(k) if fastmac is not None else None for n, k in subkeys.items()
        }
        self._aead = AESGCM(subkeys["seal"])
        # field -> q-gram -> filter mask (an int with k bits set); grows with the vocabulary
        self._grams: dict[str, dict[str, int]] = {f.value: {} for f in FILTERS}
        # the C path's cache: per field, the bit positions of each ASCII bigram (128 x 128)
        self._bigrams = {f: np.zeros(128 * 128, dtype=np.uint64) for f in FILTERS}

    def __repr__(self) -> str:
        return f"Encoder(key_id={self.key_id!r}, encoding={ENCODING_NAME!r})"

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("Encoder holds key material and cannot be pickled")

    # -- keyed features ---------------------------------------------------------------------

    def _macs(self, subkey: str, messages: Sequence[str]) -> list[bytes]:
        """The first 20 bytes of HMAC-SHA256(sub-key, UTF-8(message)) for each message."""
        if not messages:
            return []
        fast = self._fast.get(subkey)
        if fast is not None:
            raw = _b32_decode_lower("".join(fast.tokens("", messages)))
            return [raw[i : i + 20] for i in range(0, len(raw), 20)]
        state = self._macs_py[subkey]
        out: list[bytes] = []
        for msg in messages:
            m = state.copy()
            m.update(msg.encode("utf-8"))
            out.append(m.digest()[:20])
        return out

    def _gram_masks(self, field: IdentityField, grams: Iterable[str]) -> dict[str, int]:
        """Filter masks (ints with the k positions set) of q-grams, cached per encoder.

        Returns a new dict of the requested grams, so concurrent calls never see the cache
        being cleared (it is bounded; masks are pure functions of the key and the gram).
        """
        cache = self._grams[field.value]
        found: dict[str, int] = {}
        missing: list[str] = []
        for g in dict.fromkeys(grams):
            mask = cache.get(g)
            if mask is None:
                missing.append(g)
            else:
                found[g] = mask
        if len(cache) + len(missing) > _GRAM_CACHE_LIMIT:
            cache.clear()
        m, k = FILTERS[field]
        for g, h in zip(missing, self._macs(field.value, ["q:" + g for g in missing]), strict=True):
            mask = 0
            for j in range(k):
                mask |= 1 << (int.from_bytes(h[2 * j : 2 * j + 2], "big") % m)
            found[g] = cache[g] = mask
        return found

    # -- records ----------------------------------------------------------------------------

    def encode(
        self, columns: Mapping[IdentityField | str, Sequence[object]], *, n: int | None = None
    ) -> EncodedRecords:
        """Encode a batch given as columns (field -> values; absent fields are missing).

        Never raises on values: anything that is not a usable string is missing. Each distinct
        value of a field is normalised once; HMACs are computed in batches.
        """
        try:
            cols = {IdentityField(k): v for k, v in columns.items()}
        except ValueError:
            known = ", ".join(f.value for f in IdentityField)
            raise InvalidInput(f"unknown identity field; the fields are {known}") from None
        if n is None:
            lengths = {len(v) for v in cols.values()}
            if len(lengths) > 1:
                raise InvalidInput("identity columns must have one length")
            n = lengths.pop() if lengths else 0
        for values in cols.values():
            if len(values) != n:
                raise InvalidInput("identity columns must have one length")
        if fastmac is not None and all(f is not None for f in self._fast.values()):
            return self._encode_c(cols, n)
        out = np.zeros((n, RECORD_BYTES), dtype=np.uint8)
        comps: dict[IdentityField, tuple[list[int], list[object]]] = {}
        for field, values in cols.items():
            distinct: dict[object, int] = {}
            try:
                codes = [distinct.setdefault(v, len(distinct)) for v in values]
            except TypeError:  # an unhashable value: missing, like any non-string
                distinct = {}
                codes = [
                    distinct.setdefault(v if isinstance(v, str) else None, len(distinct))
                    for v in values
                ]
            spec = _SPECS[field]
            specs = [spec(v if isinstance(v, str) else None) for v in distinct]
            seg = self._segments(field, specs)
            start, length = _SEGMENTS[field]
            if n:
                out[:, start : start + length] = seg[np.asarray(codes, dtype=np.intp)]
            comps[field] = (codes, [sp[3] for sp in specs])
        out[:, _BLOCK_OFFSET:] = self._blocking(comps, n)
        return EncodedRecords(self.key_id, out.view(RECORD_DTYPE).reshape(n))

    def _encode_c(self, cols: Mapping[IdentityField, Sequence[object]], n: int) -> EncodedRecords:
        """:meth:`encode` through the C accelerator: the same bytes (tests check it).

        Per field one call finds the distinct values, normalises the plain-ASCII ones in C
        (others through the ``_spec_*`` functions above), MACs the tokens and q-grams and
        writes every record's segment; one more call computes the blocking keys.
        """
        assert fastmac is not None
        out = np.zeros((n, RECORD_BYTES), dtype=np.uint8)
        comps: dict[IdentityField, tuple[npt.NDArray[np.int32], list[object]]] = {}
        for field, values in cols.items():
            start, length = _SEGMENTS[field]
            m, k = FILTERS.get(field, (0, 0))
            codes = np.empty(n, dtype=np.int32)
            vocab = fastmac.encode_column(
                _C_KIND[field],
                values,
                self._fast[field.value],
                _SPECS[field],
                out,
                RECORD_BYTES,
                start,
                length,
                m,
                k,
                self._bigrams.get(field),
                codes,
                _NICKNAMES,
                _ABBREVIATIONS,
            )
            comps[field] = (codes, vocab)

        def part(
            field: IdentityField, pick: Callable[[object], object]
        ) -> tuple[npt.NDArray[np.int32], list[object]] | None:
            if field not in comps:
                return None
            codes, vocab = comps[field]
            return codes, [pick(c) for c in vocab]

        def year(c: object) -> object:
            return c[0] if isinstance(c, tuple) else None

        def dm(c: object) -> object:
            return c[1] if isinstance(c, tuple) else None

        def text(c: object) -> object:
            return c if isinstance(c, str) else None

        fastmac.block_keys(
            self._fast["blocking"],
            out,
            RECORD_BYTES,
            _BLOCK_OFFSET,
            (
                part(IdentityField.GIVEN_NAME, text),
                part(IdentityField.FAMILY_NAME, text),
                part(IdentityField.DATE_OF_BIRTH, year),
                part(IdentityField.DATE_OF_BIRTH, dm),
                part(IdentityField.POSTCODE, text),
            ),
        )
        return EncodedRecords(self.key_id, out.view(RECORD_DTYPE).reshape(n))

    def _segments(self, field: IdentityField, specs: Sequence[_Spec]) -> npt.NDArray[np.uint8]:
        """One segment (bytes of the field's part of a record) per spec, as rows."""
        length = _SEGMENTS[field][1]
        n = len(specs)
        out = np.zeros((n, length), dtype=np.uint8)
        if not n:
            return out
        out[:, 0] = [sp[0] for sp in specs]
        col = 1
        if field in FILTERS:
            m = FILTERS[field][0]
            out[:, 1 : 1 + m // 8] = self._filters(field, specs)
            col += m // 8
        width = max((len(sp[2]) for sp in specs), default=0)
        if width:
            index: dict[str | None, int] = {None: 0}
            nones: list[str | None] = [None] * width
            idx = np.array(
                [index.setdefault(t, len(index)) for sp in specs for t in (sp[2] or nones)],
                dtype=np.intp,
            ).reshape(n, width)
            messages = [t for t in index if t is not None]
            toks = np.zeros((len(messages) + 1, TOKEN_BYTES), dtype=np.uint8)
            macs = self._macs(field.value, messages)
            if macs:
                toks[1:] = np.frombuffer(
                    b"".join(h[:TOKEN_BYTES] for h in macs), dtype=np.uint8
                ).reshape(-1, TOKEN_BYTES)
            out[:, col:] = toks[idx].reshape(n, width * TOKEN_BYTES)
        return out

    def _filters(self, field: IdentityField, specs: Sequence[_Spec]) -> npt.NDArray[np.uint8]:
        """The Bloom filter of every spec, from its padded strings, vectorised.

        The strings are joined with NUL (which no normalised value contains) and viewed as
        UTF-32 code points; each pair of neighbours without a NUL is a bigram, coded as
        ``first << 21 | second``.
        """
        m = FILTERS[field][0]
        out = np.zeros((len(specs), m // 8), dtype=np.uint8)
        texts = [t for sp in specs for t in sp[1]]
        if not texts:
            return out
        owner = np.repeat(np.arange(len(specs), dtype=np.intp), [len(sp[1]) for sp in specs])
        chars = np.frombuffer("\x00".join(texts).encode("utf-32-le"), dtype=np.uint32)
        first, second = chars[:-1], chars[1:]
        valid = (first != 0) & (second != 0)
        text_of = np.cumsum(chars == 0)[:-1]  # the text each left character belongs to
        codes = (first[valid].astype(np.uint64) << np.uint64(21)) | second[valid]
        spec_of = owner[text_of[valid]]
        uniq, inverse = np.unique(codes, return_inverse=True)
        grams = [chr(int(c) >> 21) + chr(int(c) & 0x1FFFFF) for c in uniq.tolist()]
        masks = self._gram_masks(field, grams)
        table = np.frombuffer(
            b"".join(masks[g].to_bytes(m // 8, "little") for g in grams), dtype=np.uint8
        ).reshape(len(grams), m // 8)
        starts = np.flatnonzero(np.r_[True, spec_of[1:] != spec_of[:-1]])
        out[spec_of[starts]] = np.bitwise_or.reduceat(table[inverse], starts, axis=0)
        return out

    def encode_records(
        self, records: Iterable[Mapping[IdentityField | str, object]]
    ) -> EncodedRecords:
        """Encode records given as mappings (a convenience over :meth:`encode`)."""
        rows = list(records)
        cols: dict[IdentityField | str, list[object]] = {
            f: [r.get(f.value, r.get(f)) for r in rows] for f in IdentityField
        }
        return self.encode(cols, n=len(rows))

    def _blocking(
        self, comps: Mapping[IdentityField, tuple[list[int], list[object]]], n: int
    ) -> npt.NDArray[np.uint8]:
        """The blocking segment (flags byte + five 8-byte keys) of every record, as rows.

        Vectorised: each component (G, F, Y, DM, P) becomes a small integer per record; a key's
        message is built and MACed once per distinct combination of its components.
        """
        names: dict[str, list[str]] = {}
        ids: dict[str, npt.NDArray[np.int64]] = {}

        def component(
            field: IdentityField, name: str, pick: Callable[[object], str | None]
        ) -> None:
            vocab: dict[str, int] = {}
            if field in comps:
                codes, values = comps[field]
                per_value = np.array(
                    [
                        -1 if (v := pick(c)) is None else vocab.setdefault(v, len(vocab))
                        for c in values
                    ],
                    dtype=np.int64,
                )
                ids[name] = per_value[np.asarray(codes, dtype=np.intp)]
            else:
                ids[name] = np.full(n, -1, dtype=np.int64)
            names[name] = list(vocab)

        def str_or_none(c: object) -> str | None:
            return c if isinstance(c, str) else None

        def year(c: object) -> str | None:
            return c[0] if isinstance(c, tuple) else None

        def dm(c: object) -> str | None:
            return c[1] if isinstance(c, tuple) else None

        component(IdentityField.GIVEN_NAME, "G", str_or_none)
        component(IdentityField.FAMILY_NAME, "F", str_or_none)
        component(IdentityField.DATE_OF_BIRTH, "Y", year)
        component(IdentityField.DATE_OF_BIRTH, "DM", dm)
        component(IdentityField.POSTCODE, "P", str_or_none)

        out = np.zeros((n, 1 + len(BLOCKING_KEYS) * BLOCK_KEY_BYTES), dtype=np.uint8)
        if not n:
            return out
        for i, (slot, uses) in enumerate(_BLOCKING_COMPONENTS):
            cols = [ids[u] for u in uses]
            valid = np.logical_and.reduce([c >= 0 for c in cols])
            if not valid.any():
                continue
            combo = np.zeros(n, dtype=np.int64)
            for u, c in zip(uses, cols, strict=True):
                combo = combo * (len(names[u]) + 1) + np.where(c >= 0, c, 0)
            uniq, inverse = np.unique(combo[valid], return_inverse=True)
            columns: list[list[str]] = []
            rest = uniq
            for u in reversed(uses):
                rest, j = np.divmod(rest, len(names[u]) + 1)
                vocab = names[u]
                columns.append([vocab[k] for k in j.tolist()])
            columns.reverse()
            if slot == "gf":
                msgs = [
                    "gf:" + (x + "|" + y if x <= y else y + "|" + x)
                    for x, y in zip(*columns, strict=True)
                ]
            else:
                msgs = [slot + ":" + "|".join(t) for t in zip(*columns, strict=True)]
            table = np.frombuffer(
                b"".join(h[:BLOCK_KEY_BYTES] for h in self._macs("blocking", msgs)), dtype=np.uint8
            ).reshape(-1, BLOCK_KEY_BYTES)
            out[valid, 1 + 8 * i : 9 + 8 * i] = table[inverse]
            out[valid, 0] |= np.uint8(1 << i)
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


_B32_VALUES = np.zeros(256, dtype=np.uint64)
_B32_VALUES[np.frombuffer(b"abcdefghijklmnopqrstuvwxyz234567", dtype=np.uint8)] = np.arange(
    32, dtype=np.uint64
)
_B32_SHIFTS = np.arange(35, -1, -5, dtype=np.uint64)
_BYTE_SHIFTS = np.arange(32, -1, -8, dtype=np.uint64)


def _b32_decode_lower(chars: str) -> bytes:
    """Decode unpadded lowercase RFC 4648 base32 (a multiple of 8 characters), vectorised."""
    v = _B32_VALUES[np.frombuffer(chars.encode("ascii"), dtype=np.uint8).reshape(-1, 8)]
    groups = (v << _B32_SHIFTS).sum(axis=1, dtype=np.uint64)
    out: bytes = ((groups[:, None] >> _BYTE_SHIFTS) & np.uint64(0xFF)).astype(np.uint8).tobytes()
    return out


def _padded(texts: Sequence[str]) -> list[str]:
    """``"_" + text + "_"`` for each text: its bigrams are the filter's q-grams."""
    return ["_" + t + "_" for t in texts]


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
    """The (n, 5) blocking keys as integers, and which are present (slot order of BLOCKING_KEYS)."""
    r = encoded.records
    flags = r["block_flags"]
    slots = np.arange(len(BLOCKING_KEYS), dtype=np.uint8)
    present: npt.NDArray[np.bool_] = ((flags[:, None] >> slots) & 1) == 1
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
