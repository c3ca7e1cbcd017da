"""Privacy criteria: k-anonymity (counting rows or persons) and l-diversity.

A class fails when it has fewer than k rows (or distinct persons) or, with l, fewer than l
distinct values of some sensitive column; failing classes are suppressed. Both criteria are
monotone: merging classes (generalising) never makes a kept class fail. So rows in classes
smaller than k of a *projection* (fewer quasi-identifiers, or coarser levels) are suppressed by
every finer transformation: the pair bound below is a lower bound on suppression.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from pseudogate.anonymity import grouping
from pseudogate.anonymity.arrays import BoolArray, Int64Array, IntArray, LevelArray
from pseudogate.anonymity.grouping import dense_ids

if TYPE_CHECKING:
    from pseudogate.anonymity.transformation import Problem

__all__ = ["Verdict", "distinct_per_class", "judge", "judge_classes", "pair_suppression_bound",
           "small_class_rows"]

#: Pair bounds of base tables with at least this many rows are computed on two threads.
PARALLEL_MIN_ROWS = 100_000


@dataclass(frozen=True)
class Verdict:
    """Per class: failing?, its strength (rows, or distinct persons) and, with sensitive
    columns, its smallest number of distinct sensitive values (else None)."""

    fail: BoolArray
    strength: IntArray
    l_min: IntArray | None


def judge_classes(problem: Problem, sizes: IntArray, cls: IntArray | None, n_classes: int,
                  extra: Sequence[IntArray]) -> Verdict:
    """Which classes fail k (and l). ``sizes``: rows per class; ``cls``: class id per table
    row and ``extra`` the table's sensitive then person codes (needed only when the problem
    has sensitive or person columns)."""
    return judge(sizes, cls, n_classes, k=problem.k, l=problem.l,
                 diversity=[(extra[j], card) for j, (_, card) in enumerate(problem.diversity)],
                 persons=(extra[len(problem.diversity)], problem.persons[1])
                 if problem.persons is not None else None)


def judge(sizes: IntArray, cls: IntArray | None, n_classes: int, *, k: int, l: int | None,
          diversity: Sequence[tuple[IntArray, int]],
          persons: tuple[IntArray, int] | None) -> Verdict:
    """:func:`judge_classes` from the criteria alone: ``diversity`` and ``persons`` are the
    codes (and their number) of each table row's sensitive values and person."""
    strength = sizes
    if persons is not None:
        assert cls is not None
        strength = distinct_per_class(cls, n_classes, persons[0], persons[1])
    fail = strength < k
    l_min: IntArray | None = None
    if diversity:
        assert cls is not None
        per = [distinct_per_class(cls, n_classes, codes, card) for codes, card in diversity]
        l_min = np.minimum.reduce(per)
        if l is not None:
            fail |= l_min < l
    return Verdict(fail, strength, l_min)


def small_class_rows(sizes: IntArray, k: int) -> int:
    """Rows in groups of fewer than ``k`` rows."""
    return int(sizes[sizes < k].sum())


def distinct_per_class(cls: IntArray, n_classes: int, codes: IntArray, card: int) -> IntArray:
    """Per class, the number of distinct ``codes`` (< ``card``) among its rows."""
    pair = cls * max(card, 1) + codes
    uniq = pd.unique(pair)
    return np.bincount(uniq // max(card, 1), minlength=n_classes)


def pair_suppression_bound(problem: Problem, nodes: LevelArray) -> Int64Array:
    """Per node, a lower bound on suppressed rows from every pair (or single) of QIs."""
    q = len(problem.heights)
    bound = np.zeros(len(nodes), dtype=np.int64)
    counts = problem.counts
    pairs = list(itertools.combinations(range(q), 2)) if q >= 2 else [(0, 0)] if q else []

    def pair_table(pair: tuple[int, int]) -> Int64Array:
        # Group base rows by the two leaf codes first: every level pair works on that.
        i, j = pair
        ci, cj = problem.leaf_codes[i], problem.leaf_codes[j]
        dj = len(problem.up[j][0]) if i != j else 1
        joint = ci.astype(np.int64) * dj + (cj if i != j else 0)
        cells = len(problem.up[i][0]) * dj
        if cells <= grouping.KEYED_MAX_SPREAD * len(counts):
            by_cell = np.bincount(joint, weights=counts, minlength=cells)
            uniq = np.flatnonzero(by_cell)
            weights = by_cell[uniq]
        else:
            codes, uniq = pd.factorize(joint, sort=False)
            weights = np.bincount(codes, weights=counts, minlength=len(uniq))
        leaf_i, leaf_j = uniq // dj, uniq % dj
        return _pair_table(problem, i, j, leaf_i, leaf_j, weights)

    # Pairs are independent and numpy releases the GIL in most of the work: on large inputs
    # they are computed on two threads (the bound is the same whatever the order).
    if len(counts) >= PARALLEL_MIN_ROWS and len(pairs) > 1:
        with ThreadPoolExecutor(max_workers=2) as pool:
            tables = list(pool.map(pair_table, pairs))
    else:
        tables = [pair_table(pair) for pair in pairs]
    for (i, j), table in zip(pairs, tables, strict=True):
        bound = np.maximum(bound, table[nodes[:, i], nodes[:, j] if i != j else 0])
    return bound


def _pair_table(problem: Problem, i: int, j: int, leaf_i: IntArray, leaf_j: IntArray,
                weights: NDArray[np.number[Any]]) -> Int64Array:
    """Rows in groups smaller than k, for every (level of i, level of j).

    Level pairs with few possible groups share one ``bincount`` (offset keys); the others
    are grouped one by one. ``leaf_i``/``leaf_j`` are the distinct leaf pairs (weights: rows).
    """
    hi = problem.heights[i]
    hj = problem.heights[j] if i != j else 1
    rows = len(leaf_i)
    k = problem.k
    out = np.zeros(hi * hj, dtype=np.int64)
    batch_keys: list[IntArray] = []
    batch_combos: list[int] = []
    offset = 0
    limit = problem.max_suppressed
    # Coarse to fine: a level pair finer than one already over the suppression limit is over
    # it too, and its exact value no longer matters (every node at it is pruned either way).
    for a in range(hi - 1, -1, -1):
        gi = problem.up[i][a][leaf_i]
        for b in range(hj - 1, -1, -1):
            combo = a * hj + b
            if a == 0 and b == 0:
                out[combo] = int(weights[weights < k].sum())  # each distinct pair is a group
                continue
            coarser = max(out[combo + hj] if a + 1 < hi else 0, out[combo + 1] if b + 1 < hj else 0)
            if coarser > limit:
                out[combo] = coarser
                continue
            cj = problem.cards[j][b] if i != j else 1
            cells = problem.cards[i][a] * cj
            key = gi * cj + (problem.up[j][b][leaf_j] if i != j else 0)
            if cells <= max(2 * rows, 1 << 12) and rows >= 1 << 14:
                sizes = np.bincount(key, weights=weights, minlength=cells)
                out[combo] = int(np.rint(sizes[sizes < k].sum()))
            elif cells <= max(2 * rows, 1 << 12):
                batch_keys.append(key + offset)
                batch_combos.append(combo)
                offset += cells
            else:
                group, n_groups = dense_ids([(key, cells)], rows)
                sizes = np.bincount(group, weights=weights, minlength=n_groups)
                out[combo] = int(np.rint(sizes[sizes < k].sum()))
    if batch_keys:
        key = np.concatenate(batch_keys)
        tiled = np.tile(weights, len(batch_keys))
        sizes = np.bincount(key, weights=tiled, minlength=offset)
        small_weights = np.where(sizes[key] < k, tiled, 0.0)
        per = small_weights.reshape(len(batch_keys), rows).sum(axis=1)
        out[np.array(batch_combos)] = np.rint(per).astype(np.int64)
    return out.reshape(hi, hj)

