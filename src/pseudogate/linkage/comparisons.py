"""Comparison levels of record pairs (Splink-style), computed on encodings only.

Each field of the table is one *comparison* with ordered levels; level 0 is always "null"
(either side missing) and contributes no evidence. The other levels, best first:

- Bloom fields (names, address, postcode): Dice >= 0.95, >= 0.85, >= 0.7, then the field's
  token levels in order (``BloomField.extra``: nickname group, a surname part, postcode
  district; each reached only when Dice is below 0.7 and no earlier token level
  holds), else.
- Date fields: exact; day and month swapped; exactly one of day/month/year differs; else.
- Exact fields (sex): equal; different.

``levels(table, left, right)`` returns an ``int8`` matrix (pairs x comparisons).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from pseudogate.linkage.records import EncodedRecords

__all__ = ["DICE_LEVELS", "Comparison", "any_slot_equal", "bloom_labels", "comparisons", "dice",
           "levels"]

I8 = npt.NDArray[np.int8]
I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

#: Dice thresholds of the levels of a Bloom field, best first (then "else").
DICE_LEVELS: tuple[float, ...] = (0.95, 0.85, 0.7)

BLOOM_LABELS = ("dice>=0.95", "dice>=0.85", "dice>=0.7", "else")
DATE_LABELS = ("exact", "day-month swapped", "one part differs", "else")
EXACT_LABELS = ("exact", "else")


@dataclass(frozen=True)
class Comparison:
    """One comparison: its field, kind and the labels of its non-null levels (1, 2, ...)."""

    field: str
    kind: str  # "bloom", "date" or "exact"
    labels: tuple[str, ...]

    @property
    def n_levels(self) -> int:
        """Levels including null (0)."""
        return len(self.labels) + 1


def bloom_labels(extra: tuple[str, ...] = ()) -> tuple[str, ...]:
    """Labels of a Bloom field's levels: the Dice levels, its token levels, "else"."""
    return (*BLOOM_LABELS[:-1], *extra, BLOOM_LABELS[-1])


def comparisons(table: EncodedRecords) -> tuple[Comparison, ...]:
    """The comparisons of a table, in the column order of :func:`levels`."""
    return (
        *(Comparison(f, "bloom", bloom_labels(tuple(x.label for x in bf.extra)))
          for f, bf in table.blooms.items()),
        *(Comparison(f, "date", DATE_LABELS) for f in table.dates),
        *(Comparison(f, "exact", EXACT_LABELS) for f in table.exact),
    )


def _words(bits: npt.NDArray[np.uint8]) -> npt.NDArray[np.unsignedinteger[Any]]:
    """The rows as 64-bit words when they allow it (8x fewer elements to count)."""
    if bits.shape[1] % 8 == 0 and bits.flags.c_contiguous:
        return bits.view(np.uint64)
    return bits


def popcounts(bits: npt.NDArray[np.uint8]) -> npt.NDArray[np.int32]:
    """Set bits of each row of a packed bit matrix."""
    out: npt.NDArray[np.int32] = np.bitwise_count(_words(bits)).sum(axis=1, dtype=np.int32)
    return out


def dice(a: npt.NDArray[np.uint8], b: npt.NDArray[np.uint8],
         ca: npt.NDArray[np.int32] | None = None,
         cb: npt.NDArray[np.int32] | None = None) -> F64:
    """Dice coefficient of paired rows of two packed bit matrices (0 when both are empty)."""
    common = popcounts(np.ascontiguousarray(a & b))
    total = (popcounts(a) if ca is None else ca) + (popcounts(b) if cb is None else cb)
    out = np.zeros(len(common), dtype=np.float64)
    np.divide(2.0 * common, total, out=out, where=total > 0)
    return out


def any_slot_equal(a: npt.NDArray[np.int32], b: npt.NDArray[np.int32]) -> npt.NDArray[np.bool_]:
    """Per pair of rows: some non-zero code of ``a`` equals some code of ``b``."""
    eq = (a[:, :, None] == b[:, None, :]) & (a[:, :, None] != 0)
    out: npt.NDArray[np.bool_] = eq.any(axis=(1, 2))
    return out


def _bloom_levels(d: F64, present: npt.NDArray[np.bool_],
                  extra: list[npt.NDArray[np.bool_]] | None = None) -> I8:
    extra = extra or []
    lv = np.full(len(d), len(DICE_LEVELS) + len(extra) + 1, dtype=np.int8)
    for x, agree in reversed(list(enumerate(extra, len(DICE_LEVELS) + 1))):
        lv[agree] = x
    for k, t in reversed(list(enumerate(DICE_LEVELS, 1))):
        lv[d >= t - 1e-12] = k
    lv[~present] = 0
    return lv


def date_levels(d1: I64, m1: I64, y1: I64, d2: I64, m2: I64, y2: I64) -> I8:
    """Levels of paired dates (parts as ints, 0 = missing part)."""
    missing = ((d1 == 0) & (m1 == 0) & (y1 == 0)) | ((d2 == 0) & (m2 == 0) & (y2 == 0))
    same = (d1 == d2).astype(np.int8) + (m1 == m2) + (y1 == y2)
    swapped = (d1 == m2) & (m1 == d2) & (y1 == y2) & (d1 != m1)
    lv = np.full(len(d1), 4, dtype=np.int8)
    lv[same == 2] = 3
    lv[swapped] = 2
    lv[same == 3] = 1
    lv[missing] = 0
    return lv


def levels(table: EncodedRecords, left: I64, right: I64,
           counts: dict[str, npt.NDArray[np.int32]] | None = None) -> I8:
    """Comparison levels of the pairs (left[p], right[p]): shape (pairs, comparisons).

    ``counts`` may hold the precomputed popcounts of each Bloom field (a large speed-up when
    the same table is compared many times).
    """
    cols: list[I8] = []
    for name, bf in table.blooms.items():
        ca = cb = None
        if counts is not None and name in counts:
            ca, cb = counts[name][left], counts[name][right]
        d = dice(bf.bits[left], bf.bits[right], ca, cb)
        extra = [any_slot_equal(x.codes[left], x.codes[right]) for x in bf.extra]
        cols.append(_bloom_levels(d, bf.present[left] & bf.present[right], extra))
    for df in table.dates.values():
        parts = (df.day, df.month, df.year)
        cols.append(date_levels(*(p[left].astype(np.int64) for p in parts),
                                *(p[right].astype(np.int64) for p in parts)))
    for ef in table.exact.values():
        a, b = ef.codes[left], ef.codes[right]
        lv = np.where(a == b, 1, 2).astype(np.int8)
        lv[(a < 0) | (b < 0)] = 0
        cols.append(lv)
    if not cols:
        return np.zeros((len(left), 0), dtype=np.int8)
    return np.stack(cols, axis=1)
