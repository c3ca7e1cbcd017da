"""The encoded record table: what the matching engine sees of a record (never a value).

An :class:`EncodedRecords` is column-oriented (numpy arrays, one entry per record) so that
millions of records compare without Python loops. It holds, per record:

- ``source`` and ``row``: where the record came from (input/dataset index from 0, data row
  from 1). Clustering output is keyed by them; they carry no identity.
- ``nhs``: the exact linkage token (NHS number) as an integer code: equal codes are equal
  tokens, ``-1`` means none. Codes are assigned by whoever builds the table (the adapter
  factorises the token strings), so they never leave the process.
- ``blooms``: per name-like field (given name, family name, address, postcode) a packed
  bit array, ``uint8`` of shape ``(n, width // 8)``, compared by Dice; a record whose field
  is missing has ``present[i] == False`` (its bits are ignored). A field may carry
  ``extra`` token levels (:class:`TokenLevel`), reached in order when Dice is below the last
  Dice threshold: the nickname group of a given name, the parts of a family name, the
  postcode district.
- ``dates``: per date field the parts day, month, year as ``int16`` (0 = missing part).
- ``exact``: per categorical field (sex) an integer code, ``-1`` = missing.
- ``blocking``: ``uint64`` of shape ``(n, k)``: keyed blocking-key hashes, one column per
  kind of key (0 = this record has no key of that kind). Two records are candidates when
  they share a non-zero value in the same column.
- ``blocking_fields``: per blocking-key column, the fields it is made of (EM leaves them out
  when it learns from the pairs that key chose, as Splink does).
- ``key_id``: the linkage key every encoding was made under; tables under different keys
  cannot be compared.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from pseudogate.core.errors import FailedPrecondition, InvalidInput

__all__ = ["BloomField", "DateField", "EncodedRecords", "ExactField", "TokenLevel", "concat"]

U8 = npt.NDArray[np.uint8]
I16 = npt.NDArray[np.int16]
I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
U64 = npt.NDArray[np.uint64]
Bools = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class TokenLevel:
    """One comparison level of a Bloom field below its Dice levels: it holds for a pair when
    some slot code of one record equals some slot code of the other (``codes``: ``int32`` of
    shape ``(n, slots)``, equal tokens equal codes, 0 = no token in that slot)."""

    label: str
    codes: I32

    def __post_init__(self) -> None:
        if self.codes.ndim != 2 or self.codes.dtype != np.int32 or self.codes.shape[1] < 1:
            raise InvalidInput("a token level's codes are an (n, slots) int32 array")


@dataclass(frozen=True)
class BloomField:
    """Packed bit arrays of one field (``(n, width // 8)`` uint8), which are present, and
    the field's token levels below its Dice levels (in order, best first)."""

    bits: U8
    present: Bools
    extra: tuple[TokenLevel, ...] = ()

    def __post_init__(self) -> None:
        if self.bits.ndim != 2 or self.bits.dtype != np.uint8:
            raise InvalidInput("a Bloom field is a 2-d uint8 array")
        if self.present.shape != (self.bits.shape[0],):
            raise InvalidInput("a Bloom field's presence mask has one entry per record")
        if any(t.codes.shape[0] != self.bits.shape[0] for t in self.extra):
            raise InvalidInput("a token level has one row of codes per record")


@dataclass(frozen=True)
class DateField:
    """Day, month and year of one date field; 0 marks a missing part."""

    day: I16
    month: I16
    year: I16


@dataclass(frozen=True)
class ExactField:
    """An integer code per record, compared exactly; -1 is missing."""

    codes: I64


@dataclass(frozen=True)
class EncodedRecords:
    """The encoded records of one linkage run (see the module docstring)."""

    key_id: str
    source: I32
    row: I64
    nhs: I64
    blooms: Mapping[str, BloomField] = field(default_factory=dict)
    dates: Mapping[str, DateField] = field(default_factory=dict)
    exact: Mapping[str, ExactField] = field(default_factory=dict)
    blocking: U64 = field(default_factory=lambda: np.zeros((0, 0), dtype=np.uint64))
    blocking_fields: tuple[frozenset[str], ...] = ()

    def __post_init__(self) -> None:
        n = len(self.source)
        shapes = [self.row.shape, self.nhs.shape]
        shapes += [(f.bits.shape[0],) for f in self.blooms.values()]
        shapes += [d.shape for f in self.dates.values() for d in (f.day, f.month, f.year)]
        shapes += [f.codes.shape for f in self.exact.values()]
        if any(s != (n,) for s in shapes):
            raise InvalidInput("every column of an encoded record table has one entry per record")
        if self.blocking.ndim != 2 or (self.blocking.shape[0] not in (0, n)):
            raise InvalidInput("blocking keys are an (n, k) uint64 array")
        if len(self.blocking_fields) != self.blocking.shape[1]:
            raise InvalidInput("every blocking key column names the fields it is made of")

    def __len__(self) -> int:
        return len(self.source)

    @property
    def fields(self) -> tuple[str, ...]:
        return (*self.blooms, *self.dates, *self.exact)


def concat(tables: Sequence[EncodedRecords]) -> EncodedRecords:
    """One table of several (same key, same fields), in order; refuses mixed keys.

    NHS codes and token-level codes must already share one code space across the tables
    (equal tokens, equal codes).
    """
    if not tables:
        raise InvalidInput("nothing to link")
    first = tables[0]
    for i, t in enumerate(tables[1:], 2):
        if t.key_id != first.key_id:
            raise FailedPrecondition(
                f"input {i} was encoded under linkage key {t.key_id!r}, input 1 under "
                f"{first.key_id!r}: encodings under different keys cannot be compared"
            )
        if (tuple(t.blooms), tuple(t.dates), tuple(t.exact)) != (
            tuple(first.blooms), tuple(first.dates), tuple(first.exact)
        ) or t.blocking.shape[1] != first.blocking.shape[1] or any(
            [(x.label, x.codes.shape[1]) for x in t.blooms[k].extra]
            != [(x.label, x.codes.shape[1]) for x in first.blooms[k].extra]
            for k in first.blooms
        ):
            raise InvalidInput(f"input {i} is encoded with other fields than input 1")
    return EncodedRecords(
        key_id=first.key_id,
        source=np.concatenate([t.source for t in tables]).astype(np.int32),
        row=np.concatenate([t.row for t in tables]).astype(np.int64),
        nhs=np.concatenate([t.nhs for t in tables]).astype(np.int64),
        blooms={
            k: BloomField(
                np.concatenate([t.blooms[k].bits for t in tables]),
                np.concatenate([t.blooms[k].present for t in tables]),
                tuple(
                    TokenLevel(x.label, np.concatenate([t.blooms[k].extra[i].codes
                                                        for t in tables]))
                    for i, x in enumerate(first.blooms[k].extra)
                ),
            )
            for k in first.blooms
        },
        dates={
            k: DateField(
                *(np.concatenate([getattr(t.dates[k], p) for t in tables]).astype(np.int16)
                  for p in ("day", "month", "year"))
            )
            for k in first.dates
        },
        exact={
            k: ExactField(np.concatenate([t.exact[k].codes for t in tables]).astype(np.int64))
            for k in first.exact
        },
        blocking=np.concatenate([t.blocking for t in tables]),
        blocking_fields=first.blocking_fields,
    )
