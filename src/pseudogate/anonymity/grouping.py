"""Grouping rows by the combination of several integer code columns."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pseudogate.anonymity.arrays import Int64Array, IntArray

__all__ = ["KEYED_MAX_SPREAD", "dense_ids"]

#: Grouping by one bincount over mixed-radix keys when the key space is at most this many
#: times the rows (beyond it, numbering the classes densely is cheaper).
KEYED_MAX_SPREAD = 2
_INT64_SAFE = 1 << 62


def dense_ids(columns: list[tuple[IntArray, int]], rows: int) -> tuple[Int64Array, int]:
    """Dense id per row of the combination of code columns (codes < card), and their number."""
    if not columns:
        return np.zeros(rows, dtype=np.int64), (1 if rows else 0)
    key = columns[0][0].astype(np.int64, copy=True)
    size = max(columns[0][1], 1)
    for codes, card in columns[1:]:
        card = max(card, 1)
        if size * card >= _INT64_SAFE:
            dense, uniques = pd.factorize(key, sort=False)
            key, size = dense.astype(np.int64), max(len(uniques), 1)
        key *= card
        key += codes
        size *= card
    if size <= max(8 * rows, 1 << 16):
        present = np.zeros(size, dtype=np.bool_)
        present[key] = True
        dense_of: IntArray = np.cumsum(present, dtype=np.int64 if size >= 1 << 31 else np.int32)
        dense_of -= 1
        return dense_of[key].astype(np.int64), int(dense_of[-1]) + 1
    dense, uniques = pd.factorize(key, sort=False)
    return dense.astype(np.int64), len(uniques)

