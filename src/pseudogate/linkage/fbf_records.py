"""The engine's record table from opened ``pg-fbf-v1`` encodings (docs/linkage.md).

:func:`from_encodings` maps opened (in-memory) ``pg-fbf-v1`` records, one batch per input,
into the :class:`~pseudogate.linkage.records.EncodedRecords` the matching engine compares:

- ``blooms``: the four field filters as they are (given name, family name 256 bits;
  postcode 128; address 512), present when the field's flags byte is set, with their token
  levels (``TokenLevel``, compared when Dice is below 0.7): the given name's nickname-group
  token ("nickname group agrees"), the family name's three part tokens ("a surname part
  agrees": any part of one equals any part of the other) and the postcode's outward-code
  token ("district agrees"; a sector level was measured and did not help, so there is none);
- ``dates``: the year, month and day *tokens* of the date of birth as small integer codes
  (equal tokens, equal codes). Month and day share one code space, as their tokens share the
  role ``dm``, so a day/month swap is still visible to the engine. A date without parts (text
  only) is missing for the engine;
- ``exact``: the sex token as a code (-1 missing);
- ``blocking``: the five keyed blocking keys (``fy``, ``gdm``, ``dob``, ``gf``, ``pc``),
  0 where absent, with the fields each is made of.

The batches must share one key and encoding (:func:`pseudogate.core.encoding.require_same_key`,
which names the inputs, never values). Codes exist only in this process.

``pg-fbf-v1`` carries evidence the engine does not use and which is therefore left out
here: the first-given-name and Soundex tokens, the surname Soundex, the full-postcode and
sector tokens and the text token of an unparsed date.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from pseudogate.core import encoding as fbf
from pseudogate.core.errors import InvalidInput
from pseudogate.linkage.records import (
    BloomField,
    DateField,
    EncodedRecords,
    ExactField,
    TokenLevel,
)

__all__ = ["BLOCKING_FIELDS", "from_encodings", "nhs_codes"]

#: Fields of each blocking key, in the slot order of ``pg-fbf-v1`` (fy, gdm, dob, gf, pc).
BLOCKING_FIELDS: tuple[frozenset[str], ...] = (
    frozenset({"family_name", "date_of_birth"}),
    frozenset({"given_name", "date_of_birth"}),
    frozenset({"date_of_birth"}),
    frozenset({"given_name", "family_name"}),
    frozenset({"postcode"}),
)
assert len(BLOCKING_FIELDS) == len(fbf.BLOCKING_KEYS)

#: Engine field name -> record column prefix of its Bloom filter.
_BLOOMS = {"given_name": "given", "family_name": "family", "postcode": "postcode",
           "address": "address"}


def _codes(tokens: npt.NDArray[np.uint32], present: npt.NDArray[np.bool_]) -> npt.NDArray[np.int64]:
    """Codes 1, 2, ... of the present tokens (equal tokens, equal codes); 0 where absent."""
    out = np.zeros(len(tokens), dtype=np.int64)
    if present.any():
        _, inverse = np.unique(tokens[present], return_inverse=True)
        out[present] = inverse.astype(np.int64) + 1
    return out


def _slot_codes(tokens: npt.NDArray[np.uint32], present: npt.NDArray[np.bool_]
                ) -> npt.NDArray[np.int32]:
    """Token slots ``(n, s)`` as int32 codes in one code space (equal tokens, equal codes;
    0 where a slot is absent)."""
    tokens = tokens.reshape(len(tokens), -1)
    present = present.reshape(len(present), -1)
    codes = _codes(tokens.ravel(), present.ravel())
    if codes.max(initial=0) > np.iinfo(np.int32).max:
        raise InvalidInput("too many distinct tokens to code")  # under 700 million records: never
    return np.ascontiguousarray(codes.reshape(tokens.shape).astype(np.int32))


def _token_levels(r: npt.NDArray[np.void]) -> dict[str, tuple[TokenLevel, ...]]:
    """The token levels of each Bloom field (docs/linkage.md, "Comparison levels")."""
    given = (r["given_flags"] & 1) == 1
    fam_slots = ((r["family_flags"][:, None] >> np.arange(1, 4, dtype=np.uint8)) & 1) == 1
    pflags = r["postcode_flags"]
    return {
        "given_name": (TokenLevel("nickname group agrees",
                                  _slot_codes(r["given_nick"], given)),),
        "family_name": (TokenLevel("a surname part agrees",
                                   _slot_codes(r["family_part"], fam_slots)),),
        "postcode": (
            TokenLevel("district agrees", _slot_codes(r["postcode_out"], (pflags & 4) == 4)),
        ),
        "address": (),
    }


def nhs_codes(tokens: Sequence[str | None]) -> npt.NDArray[np.int64]:
    """NHS linkage tokens as integer codes (equal tokens, equal codes; -1 none)."""
    arr = np.asarray([t or "" for t in tokens], dtype=object).astype(str)
    uniq, inverse = np.unique(arr, return_inverse=True)
    codes = np.arange(len(uniq), dtype=np.int64)
    codes[uniq == ""] = -1
    out: npt.NDArray[np.int64] = codes[inverse].reshape(len(arr))
    return out


def from_encodings(
    batches: Sequence[fbf.EncodedRecords],
    *,
    names: Sequence[str],
    nhs: npt.NDArray[np.int64],
    source: Sequence[int],
    row: Sequence[int],
) -> EncodedRecords:
    """The engine's table of the opened batches, in order (refused under different keys)."""
    opened = fbf.EncodedRecords.concat(batches, names=names)  # require_same_key
    r = opened.records
    n = len(r)
    if not len(source) == len(row) == len(nhs) == n:
        raise InvalidInput("one source, row and NHS code per encoded record")
    extra = _token_levels(r)
    blooms = {
        name: BloomField(np.ascontiguousarray(r[p + "_bf"]), (r[p + "_flags"] & 1) == 1,
                         extra[name])
        for name, p in _BLOOMS.items()
    }
    parsed = (r["dob_flags"] & 2) == 2
    year = _codes(r["dob_year"], parsed)
    dm = _codes(np.concatenate([r["dob_day"], r["dob_month"]]), np.concatenate([parsed, parsed]))
    if max(int(year.max(initial=0)), int(dm.max(initial=0))) > np.iinfo(np.int16).max:
        raise InvalidInput("too many distinct dates of birth to code")  # cannot happen: <= 10^4
    dates = DateField(dm[:n].astype(np.int16), dm[n:].astype(np.int16), year.astype(np.int16))
    sex = _codes(r["sex"], (r["sex_flags"] & 1) == 1) - 1
    keys, present = fbf.blocking_keys(opened)
    return EncodedRecords(
        key_id=opened.key_id,
        source=np.asarray(source, dtype=np.int32),
        row=np.asarray(row, dtype=np.int64),
        nhs=np.asarray(nhs, dtype=np.int64),
        blooms=blooms,
        dates={"date_of_birth": dates},
        exact={"sex": ExactField(sex)},
        blocking=np.where(present, keys, np.uint64(0)).astype(np.uint64),
        blocking_fields=BLOCKING_FIELDS,
    )
