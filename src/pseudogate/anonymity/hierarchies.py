"""Generalisation hierarchies built over the distinct values of one column.

Level 0 is the original value (normalised for dates and postcodes), the last level is whatever
the hierarchy's top is (``*`` for every built-in type). Each hierarchy type (the table
``pseudogate.core.hierarchy_types.HIERARCHY_TYPES``) places the distinct values and labels their
levels as text; this module encodes them as integer codes once per distinct value, so a
million-row column costs one factorisation plus work per distinct value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pseudogate.anonymity.arrays import Int64Array, IntArray
from pseudogate.core.errors import RowError
from pseudogate.core.hierarchy_types import HIERARCHY_TYPES, Levels
from pseudogate.core.policy import HierarchySpec

__all__ = ["ColumnHierarchy", "build_hierarchy", "level_labels"]


@dataclass(frozen=True)
class ColumnHierarchy:
    """One quasi-identifier, encoded.

    ``codes[r]`` is row r's leaf code; ``up[level][leaf]`` its code at ``level``;
    ``labels[level][code]`` the released text; ``cover[level][leaf]`` how many hierarchy
    leaves the generalised value of ``leaf`` covers; ``leaves`` is |D| in the Loss formula.
    """

    column: str
    codes: Int64Array
    up: tuple[Int64Array, ...]
    labels: tuple[tuple[str, ...], ...]
    cover: tuple[IntArray, ...]
    leaves: int

    @property
    def height(self) -> int:
        """Number of levels, counting level 0."""
        return len(self.up)

    def cardinality(self, level: int) -> int:
        return len(self.labels[level])

    def level_map(self, source: int, target: int) -> Int64Array:
        """Level-``source`` code -> level-``target`` code (each code has one parent)."""
        to = np.empty(self.cardinality(source), dtype=np.int64)
        to[self.up[source]] = self.up[target]
        return to

    def code_cover(self, level: int) -> Int64Array:
        """Leaves covered by each level-``level`` code."""
        per_code = np.zeros(self.cardinality(level), dtype=np.int64)
        per_code[self.up[level]] = self.cover[level]
        return per_code


def level_labels(spec: HierarchySpec, value: str) -> list[str]:
    """The labels of one (already normalised) value at every level of a built-in hierarchy."""
    return HIERARCHY_TYPES[spec.type].labels(spec, value)


def build_hierarchy(
    spec: HierarchySpec,
    values: pd.Series,
    *,
    column: str,
    files: Mapping[str, bytes] | None = None,
    errors: list[RowError],
) -> ColumnHierarchy | None:
    """Encode a column; invalid values are appended to ``errors`` (row, reason) and None returned."""
    raw_codes, raw_uniques = pd.factorize(values, sort=False)
    levels = HIERARCHY_TYPES[spec.type].levels(spec, [str(u) for u in raw_uniques],
                                               files=files or {}, column=column)
    if levels.invalid:
        _report_rows(raw_codes, levels.invalid, column, errors)
        return None
    return _encode(levels, raw_codes, column)


def _encode(levels: Levels, raw_codes: IntArray, column: str) -> ColumnHierarchy:
    """Integer codes of the leaves and of every level, and the leaves each label covers.

    Codes of a level number its labels in order of first appearance among the leaves; a
    repeated leaf row (tree files) counts as a leaf each time.
    """
    height = levels.height
    leaves = len(levels.rows)
    if not leaves:
        empty = np.zeros(0, dtype=np.int64)
        return ColumnHierarchy(column, empty, tuple(empty for _ in range(height)),
                               tuple(() for _ in range(height)),
                               tuple(empty for _ in range(height)), 0)
    row_codes: list[Int64Array] = []
    labels: list[tuple[str, ...]] = []
    for level_values in zip(*levels.rows, strict=True):
        codes, uniques = pd.factorize(np.asarray(level_values, dtype=object), sort=False)
        row_codes.append(codes.astype(np.int64))
        labels.append(tuple(str(u) for u in uniques))
    # Level-0 codes are the leaf codes; the first row of each gives its ancestors.
    first_row = np.full(len(labels[0]), -1, dtype=np.int64)
    order = np.arange(leaves - 1, -1, -1)
    first_row[row_codes[0][order]] = order
    up = tuple(rc[first_row] for rc in row_codes)
    cover = tuple(np.bincount(rc, minlength=len(lab))[u]
                  for rc, lab, u in zip(row_codes, labels, up, strict=True))
    index = {v: i for i, v in enumerate(labels[0])}
    value_leaf = np.array([index[v] for v in levels.leaf_labels], dtype=np.int64)
    codes = value_leaf[raw_codes] if len(raw_codes) else np.zeros(0, dtype=np.int64)
    return ColumnHierarchy(column, codes, up, tuple(labels), cover, leaves)


def _report_rows(raw_codes: IntArray, bad: Mapping[int, str], column: str,
                 errors: list[RowError]) -> None:
    bad_codes = np.fromiter(bad.keys(), dtype=np.int64)
    rows = np.flatnonzero(np.isin(raw_codes, bad_codes))
    for r in rows[:1000].tolist():
        errors.append(RowError(row=r + 1, reason=bad[int(raw_codes[r])], column=column))
