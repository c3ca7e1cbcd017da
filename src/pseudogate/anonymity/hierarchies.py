"""Generalisation hierarchies built over the distinct values of one column.

Level 0 is the original value (normalised for dates and postcodes), the last level is whatever
the hierarchy's top is (``*`` for every built-in type). Everything is computed once per
distinct value, so a million-row column costs one factorisation plus work per distinct value.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pseudogate.anonymity.tree import TreeTable, parse_tree_file
from pseudogate.errors import ConfigurationError, RowError
from pseudogate.normalise import InvalidValue, Kind, normalise
from pseudogate.policy import HierarchySpec, HierarchyType

__all__ = ["ColumnHierarchy", "build_hierarchy", "level_labels"]

TOP = "*"


@dataclass(frozen=True)
class ColumnHierarchy:
    """One quasi-identifier, encoded.

    ``codes[r]`` is row r's leaf code; ``up[level][leaf]`` its code at ``level``;
    ``labels[level][code]`` the released text; ``cover[level][leaf]`` how many hierarchy
    leaves the generalised value of ``leaf`` covers; ``leaves`` is |D| in the Loss formula.
    """

    column: str
    codes: np.ndarray
    up: tuple[np.ndarray, ...]
    labels: tuple[tuple[str, ...], ...]
    cover: tuple[np.ndarray, ...]
    leaves: int

    @property
    def height(self) -> int:
        """Number of levels, counting level 0."""
        return len(self.up)

    def cardinality(self, level: int) -> int:
        return len(self.labels[level])


# -- label functions for the built-in types (value -> label at each level) -----------------------


def _interval_labels(value: str, widths: Sequence[int]) -> list[str]:
    v = int(value)
    out = [value]
    for w in widths:
        lo = (v // w) * w
        out.append(f"{lo}-{lo + w - 1}")
    out.append(TOP)
    return out


def _date_label(d: _dt.date, level: str) -> str:
    if level == "month":
        return f"{d.year:04d}-{d.month:02d}"
    if level == "quarter":
        return f"{d.year:04d}-Q{(d.month - 1) // 3 + 1}"
    if level == "year":
        return f"{d.year:04d}"
    width = 5 if level == "5y" else 10
    lo = (d.year // width) * width
    return f"{lo:04d}-{lo + width - 1:04d}"


def _postcode_label(pc: str, level: str) -> str:
    outward, inward = pc.split(" ")
    if level == "sector":
        return f"{outward} {inward[0]}"
    if level == "district":
        return outward
    letters = len(outward) - len(outward.lstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
    return outward[:letters]


def _mask_label(value: str, keep: int) -> str:
    return value[:keep] + "*" * max(len(value) - keep, 0)


def level_labels(spec: HierarchySpec, value: str) -> list[str]:
    """The labels of one (already normalised) value at every level of a built-in hierarchy."""
    if spec.type is HierarchyType.INTERVAL:
        return _interval_labels(value, spec.widths)
    if spec.type is HierarchyType.DATE:
        d = _dt.date.fromisoformat(value)
        return [value, *(_date_label(d, lv) for lv in spec.levels), TOP]
    if spec.type is HierarchyType.POSTCODE:
        return [value, *(_postcode_label(value, lv) for lv in spec.levels), TOP]
    if spec.type is HierarchyType.MASK:
        return [value, *(_mask_label(value, n) for n in spec.keep), TOP]
    if spec.type is HierarchyType.SUPPRESS:
        return [value, TOP]
    raise ConfigurationError(f"hierarchy type {spec.type.value!r} has no label function")


def _normaliser(spec: HierarchySpec) -> Callable[[str], str] | None:
    """What level 0 releases: normalised dates/postcodes, checked integers, others as given."""
    if spec.type is HierarchyType.DATE:
        return lambda v: normalise(Kind.DATE, v)
    if spec.type is HierarchyType.POSTCODE:
        return lambda v: normalise(Kind.POSTCODE, v)
    if spec.type is HierarchyType.INTERVAL:
        return _check_integer
    return None


def _check_integer(value: str) -> str:
    text = value.strip()
    body = text[1:] if text[:1] in "+-" else text
    if not body:
        raise _BadValue("empty" if not text else "not_an_integer")
    if not (body.isascii() and body.isdigit()):
        raise _BadValue("not_an_integer")
    return value


class _BadValue(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason


def _factorise_levels(level_rows: list[list[str]]) -> tuple[list[np.ndarray], list[tuple[str, ...]]]:
    """Per level: code of each leaf and the label of each code."""
    ups: list[np.ndarray] = []
    labels: list[tuple[str, ...]] = []
    for level_values in zip(*level_rows, strict=True):
        codes, uniques = pd.factorize(np.asarray(level_values, dtype=object), sort=False)
        ups.append(codes.astype(np.int64))
        labels.append(tuple(str(u) for u in uniques))
    return ups, labels


def build_hierarchy(
    spec: HierarchySpec,
    values: pd.Series,
    *,
    column: str,
    files: dict[str, bytes] | None = None,
    errors: list[RowError],
) -> ColumnHierarchy | None:
    """Encode a column; invalid values are appended to ``errors`` (row, reason) and None returned."""
    raw_codes, raw_uniques = pd.factorize(values, sort=False)
    raw_uniques = [str(u) for u in raw_uniques]
    if spec.type is HierarchyType.TREE:
        return _build_tree(spec, raw_codes, raw_uniques, column=column, files=files or {},
                           errors=errors)
    norm = _normaliser(spec)
    normalised: list[str | None] = []
    bad: dict[int, str] = {}
    for i, raw in enumerate(raw_uniques):
        if norm is None:
            normalised.append(raw)
            continue
        try:
            normalised.append(norm(raw))
        except InvalidValue as exc:
            bad[i] = str(exc.reason)
            normalised.append(None)
        except _BadValue as exc:
            bad[i] = exc.reason
            normalised.append(None)
    if bad:
        _report_rows(raw_codes, bad, column, errors)
        return None
    # Leaves are the distinct (normalised) values present in the input.
    leaf_of_raw, leaf_values = pd.factorize(np.asarray(normalised, dtype=object), sort=False)
    leaf_values = [str(v) for v in leaf_values]
    level_rows = [level_labels(spec, v) for v in leaf_values]
    if not level_rows:
        height = _builtin_height(spec)
        empty = np.zeros(0, dtype=np.int64)
        return ColumnHierarchy(column, empty, tuple(empty for _ in range(height)),
                               tuple(() for _ in range(height)),
                               tuple(empty for _ in range(height)), 0)
    ups, labels = _factorise_levels(level_rows)
    cover = tuple(np.bincount(up, minlength=len(lab))[up] for up, lab in zip(ups, labels,
                                                                             strict=True))
    codes = leaf_of_raw.astype(np.int64)[raw_codes]
    return ColumnHierarchy(column, codes, tuple(ups), tuple(labels), cover, len(leaf_values))


def _builtin_height(spec: HierarchySpec) -> int:
    return {
        HierarchyType.INTERVAL: len(spec.widths) + 2,
        HierarchyType.DATE: len(spec.levels) + 2,
        HierarchyType.POSTCODE: len(spec.levels) + 2,
        HierarchyType.MASK: len(spec.keep) + 2,
        HierarchyType.SUPPRESS: 2,
    }[spec.type]


def _report_rows(raw_codes: np.ndarray, bad: dict[int, str], column: str,
                 errors: list[RowError]) -> None:
    bad_codes = np.fromiter(bad.keys(), dtype=np.int64)
    rows = np.flatnonzero(np.isin(raw_codes, bad_codes))
    for r in rows[:1000].tolist():
        errors.append(RowError(row=r + 1, reason=bad[int(raw_codes[r])], column=column))


def _build_tree(spec: HierarchySpec, raw_codes: np.ndarray, raw_uniques: list[str], *,
                column: str, files: dict[str, bytes], errors: list[RowError]) -> ColumnHierarchy | None:
    assert spec.file is not None
    if spec.file not in files:
        raise ConfigurationError(f"hierarchy file {spec.file!r} of column {column!r} is missing")
    table: TreeTable = parse_tree_file(files[spec.file], source=spec.file)
    height = table.height
    # Leaves are the file's rows (repeated rows count each time, as in ARX).
    leaves = len(table.rows)
    rows_by_level = [[row[j] for row in table.rows] for j in range(height)]
    file_codes: list[np.ndarray] = []
    labels: list[tuple[str, ...]] = []
    for level_values in rows_by_level:
        codes, uniques = pd.factorize(np.asarray(level_values, dtype=object), sort=False)
        file_codes.append(codes.astype(np.int64))
        labels.append(tuple(str(u) for u in uniques))
    # Distinct level-0 values are the codes of level 0; first row of each gives its ancestors.
    first_row = np.full(len(labels[0]), -1, dtype=np.int64)
    order = np.arange(leaves - 1, -1, -1)
    first_row[file_codes[0][order]] = order
    up = tuple(fc[first_row] for fc in file_codes)
    cover = tuple(np.bincount(fc, minlength=len(lab))[u]
                  for fc, lab, u in zip(file_codes, labels, up, strict=True))
    index = {v: i for i, v in enumerate(labels[0])}
    raw_to_leaf = np.array([index.get(v, -1) for v in raw_uniques], dtype=np.int64)
    missing = {i: "not_in_hierarchy" for i in np.flatnonzero(raw_to_leaf < 0).tolist()}
    if missing:
        _report_rows(raw_codes, missing, column, errors)
        return None
    codes = raw_to_leaf[raw_codes] if len(raw_codes) else np.zeros(0, dtype=np.int64)
    return ColumnHierarchy(column, codes, up, tuple(labels), cover, leaves)
