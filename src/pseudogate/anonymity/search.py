"""Optimal full-domain global recoding over the generalisation lattice.

Works on the table of distinct quasi-identifier combinations with their row counts (plus the
codes of sensitive and person columns when l-diversity or person counting needs them), so the
cost of one transformation grows with distinct combinations, not rows.

Exactness: metrics are compared as exact integers (Loss as the product of its per-column
rational factors over a common denominator, discernibility as an integer), ties broken by the
lowest level sum and then the lexicographically smallest level vector.

Pruning (docs/anonymisation.md):
- monotonicity: a transformation below an unacceptable one is unacceptable;
- pair bound: rows in a class of fewer than k rows of any pair of quasi-identifiers are
  suppressed under every transformation at those two levels (a lower bound on suppression);
- metric lower bounds: Loss without suppression (exact at 0%), discernibility without
  suppression of any finer transformation evaluated; a node whose bound exceeds the best
  acceptable metric found is never evaluated.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
import pandas as pd

from pseudogate.errors import FailedPrecondition

__all__ = ["EXACT_LIMIT", "NodeResult", "Problem", "SearchOutcome", "evaluate", "search"]

#: Lattices with more transformations than this use the greedy heuristic.
EXACT_LIMIT = 1_000_000
_INT64_SAFE = 1 << 62


@dataclass
class Problem:
    """The encoded search problem (base rows = distinct combinations)."""

    heights: tuple[int, ...]
    leaf_codes: list[np.ndarray]  # per QI: leaf code of each base row
    counts: np.ndarray  # rows per base row
    up: list[tuple[np.ndarray, ...]]  # per QI, per level: leaf -> level code
    cards: list[tuple[int, ...]]  # per QI, per level: number of codes
    cover: list[tuple[np.ndarray, ...]]  # per QI, per level: leaf -> leaves covered
    leaves: tuple[int, ...]  # |D_i|
    k: int
    l: int | None
    max_suppressed: int
    metric: str
    diversity: list[tuple[np.ndarray, int]] = field(default_factory=list)  # sensitive codes
    persons: tuple[np.ndarray, int] | None = None  # person codes (k counts persons)
    _gen: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)
    _cov: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return int(self.counts.sum())

    def generalised(self, qi: int, level: int) -> np.ndarray:
        """Level codes of every base row for one QI (cached)."""
        key = (qi, level)
        got = self._gen.get(key)
        if got is None:
            got = self.up[qi][level][self.leaf_codes[qi]]
            self._gen[key] = got
        return got

    def row_cover(self, qi: int, level: int) -> np.ndarray:
        key = (qi, level)
        got = self._cov.get(key)
        if got is None:
            got = self.cover[qi][level][self.leaf_codes[qi]]
            self._cov[key] = got
        return got


@dataclass(frozen=True)
class NodeResult:
    """One evaluated transformation."""

    levels: tuple[int, ...]
    suppressed: int
    acceptable: bool
    classes: int  # classes among kept rows
    smallest: int  # smallest kept class size (rows, or persons with person counting)
    metric_key: int  # exact comparison key (lower is better)
    loss: float
    loss_per_column: tuple[float, ...]
    discernibility: int
    dm_unsuppressed: int  # sum of squared class sizes without suppression
    class_of_base: np.ndarray  # dense class id per base row
    kept_class: np.ndarray  # per class: kept?
    l_achieved: int | None


@dataclass(frozen=True)
class SearchOutcome:
    best: NodeResult
    transformations: int
    evaluated: int
    seconds: float
    exact: bool


def _class_ids(problem: Problem, levels: tuple[int, ...]) -> tuple[np.ndarray, int]:
    """Dense class id per base row for a transformation, and the number of classes."""
    m = len(problem.counts)
    if not levels:
        return np.zeros(m, dtype=np.int64), (1 if m else 0)
    key = problem.generalised(0, levels[0]).astype(np.int64, copy=True)
    size = problem.cards[0][levels[0]]
    for qi in range(1, len(levels)):
        card = problem.cards[qi][levels[qi]]
        if size * card >= _INT64_SAFE:
            codes, uniques = pd.factorize(key, sort=False)
            key, size = codes.astype(np.int64), len(uniques)
        key *= card
        key += problem.generalised(qi, levels[qi])
        size *= card
    if size <= max(4 * m, 1 << 16):
        present = np.zeros(size, dtype=np.int64)
        present[key] = 1
        dense = np.cumsum(present) - 1
        return dense[key], int(present.sum())
    codes, uniques = pd.factorize(key, sort=False)
    return codes.astype(np.int64), len(uniques)


def _distinct_per_class(cls: np.ndarray, n_classes: int, codes: np.ndarray, card: int) -> np.ndarray:
    pair = cls * max(card, 1) + codes
    uniq = pd.unique(pair)
    return np.bincount(uniq // max(card, 1), minlength=n_classes)


def evaluate(problem: Problem, levels: tuple[int, ...]) -> NodeResult:
    """Classes, suppression, acceptability and exact metrics of one transformation."""
    cls, n_classes = _class_ids(problem, levels)
    counts = problem.counts
    sizes = np.bincount(cls, weights=counts, minlength=n_classes).astype(np.int64)
    strength = sizes
    if problem.persons is not None:
        strength = _distinct_per_class(cls, n_classes, *problem.persons)
    fail = strength < problem.k
    l_min: np.ndarray | None = None
    if problem.l is not None and problem.diversity:
        per = [_distinct_per_class(cls, n_classes, codes, card) for codes, card in problem.diversity]
        l_min = np.minimum.reduce(per)
        fail |= l_min < problem.l
    elif problem.diversity:
        per = [_distinct_per_class(cls, n_classes, codes, card) for codes, card in problem.diversity]
        l_min = np.minimum.reduce(per)
    suppressed = int(sizes[fail].sum())
    kept = ~fail
    n = problem.rows
    kept_sizes = sizes[kept]
    dm_all = int((sizes * sizes).sum())
    dm = int((kept_sizes * kept_sizes).sum()) + n * suppressed
    # Loss: exact rational per column, numerator A_i + S*D_i - N over N*(D_i - 1).
    factors: list[Fraction] = []
    key = 1
    if suppressed:
        supp_weights = np.where(fail[cls], counts, 0)
    for qi, level in enumerate(levels):
        d = problem.leaves[qi]
        if d <= 1 or n == 0:
            factors.append(Fraction(0))
            continue
        row_cover = problem.row_cover(qi, level)
        covered = int(counts @ row_cover)
        if suppressed:
            covered -= int(supp_weights @ row_cover)
        num = max(0, covered + suppressed * d - n)
        den = n * (d - 1)
        factors.append(Fraction(num, den))
        key *= den + num
    if factors and n:
        product = math.prod((1 + f for f in factors), start=Fraction(1))
        loss = float(product) ** (1.0 / len(factors)) - 1.0
    else:
        loss = 0.0
    metric_key = key if problem.metric == "loss" else dm
    return NodeResult(
        levels=levels,
        suppressed=suppressed,
        acceptable=suppressed <= problem.max_suppressed,
        classes=int(kept.sum()),
        smallest=int(strength[kept].min()) if kept.any() else 0,
        metric_key=metric_key,
        loss=max(loss, 0.0),
        loss_per_column=tuple(float(f) for f in factors),
        discernibility=dm,
        dm_unsuppressed=dm_all,
        class_of_base=cls,
        kept_class=kept,
        l_achieved=int(l_min[kept].min()) if l_min is not None and kept.any() else None,
    )


# -- the lattice ---------------------------------------------------------------------------------


def _lattice(heights: tuple[int, ...]) -> np.ndarray:
    """All level vectors, one row each, in lexicographic order."""
    if not heights:
        return np.zeros((1, 0), dtype=np.int16)
    grids = np.indices(heights, dtype=np.int16)
    return grids.reshape(len(heights), -1).T.copy()


def _pair_suppression_bound(problem: Problem, nodes: np.ndarray) -> np.ndarray:
    """Per node, a lower bound on suppressed rows from every pair (or single) of QIs."""
    q = len(problem.heights)
    bound = np.zeros(len(nodes), dtype=np.int64)
    counts = problem.counts
    k = problem.k
    pairs = list(itertools.combinations(range(q), 2)) if q >= 2 else [(0, 0)] if q else []
    for i, j in pairs:
        # Group base rows by the two leaf codes first: every level pair works on that.
        ci, cj = problem.leaf_codes[i], problem.leaf_codes[j]
        dj = len(problem.up[j][0]) if i != j else 1
        joint = ci.astype(np.int64) * dj + (cj if i != j else 0)
        codes, uniq = pd.factorize(joint, sort=False)
        weights = np.bincount(codes, weights=counts, minlength=len(uniq))
        leaf_i, leaf_j = uniq // dj, uniq % dj
        table = np.zeros((problem.heights[i], problem.heights[j]), dtype=np.int64)
        for a in range(problem.heights[i]):
            gi = problem.up[i][a][leaf_i]
            for b in range(problem.heights[j]):
                if i == j and b:
                    break
                card = problem.cards[j][b] if i != j else 1
                key = gi * card + (problem.up[j][b][leaf_j] if i != j else 0)
                sizes = np.bincount(key, weights=weights)
                table[a, b] = int(sizes[(sizes > 0) & (sizes < k)].sum())
        bound = np.maximum(bound, table[nodes[:, i], nodes[:, j] if i != j else 0])
    return bound


def _loss_lower_bound(problem: Problem, nodes: np.ndarray) -> np.ndarray:
    """log of the exact Loss key without suppression (exact at 0% suppression)."""
    n = problem.rows
    lb = np.zeros(len(nodes), dtype=np.float64)
    for qi in range(len(problem.heights)):
        d = problem.leaves[qi]
        if d <= 1 or n == 0:
            continue
        per_level = np.array(
            [math.log(n * (d - 1) + max(0, int(problem.counts @ problem.row_cover(qi, lv)) - n))
             for lv in range(problem.heights[qi])]
        )
        lb += per_level[nodes[:, qi]]
    return lb


def _key_float(problem: Problem, result: NodeResult) -> float:
    if problem.metric == "loss":
        return math.log(result.metric_key) if result.metric_key > 0 else 0.0
    return float(result.metric_key)


def _better(a: NodeResult, b: NodeResult | None) -> bool:
    if b is None:
        return True
    return (a.metric_key, sum(a.levels), a.levels) < (b.metric_key, sum(b.levels), b.levels)


def search(
    problem: Problem,
    *,
    progress: Callable[[str, float], None] | None = None,
    exact_limit: int | None = None,
) -> SearchOutcome:
    """The acceptable transformation with the lowest metric (exact up to ``exact_limit``)."""
    start = time.perf_counter()
    exact_limit = EXACT_LIMIT if exact_limit is None else exact_limit
    total = math.prod(problem.heights) if problem.heights else 1
    if total > exact_limit:
        best, evaluated = _greedy(problem)
        return SearchOutcome(best, total, evaluated, time.perf_counter() - start, exact=False)
    nodes = _lattice(problem.heights)
    count = len(nodes)
    alive = np.ones(count, dtype=bool)
    supp_lb = np.zeros(count, dtype=np.int64)
    if problem.heights:
        supp_lb = _pair_suppression_bound(problem, nodes)
        alive &= supp_lb <= problem.max_suppressed
    level_sum = nodes.sum(axis=1, dtype=np.int64)
    # Secondary order: level sum, then lexicographic (nodes are already lexicographic).
    rank = np.empty(count, dtype=np.int64)
    rank[np.lexsort((np.arange(count), level_sum))] = np.arange(count)
    if problem.metric == "loss":
        lb = _loss_lower_bound(problem, nodes)
        tol = 1e-9
    else:
        # DM >= DM without suppression >= N^2 / classes, and DM >= N * suppressed.
        n = float(problem.rows)
        classes_ub = np.minimum(_product_cards(problem, nodes), max(len(problem.counts), 1))
        lb = np.maximum(n * n / classes_ub, n * supp_lb.astype(np.float64))
        tol = 0.5
    best: NodeResult | None = None
    best_float = math.inf
    evaluated = 0
    while True:
        if not alive.any():
            break
        candidates = np.flatnonzero(alive)
        cand_lb = lb[candidates]
        low = cand_lb.min()
        if low > best_float + tol:
            break
        near = candidates[cand_lb <= low + tol]
        pick = int(near[np.argmin(rank[near])])
        alive[pick] = False
        levels = tuple(int(v) for v in nodes[pick])
        result = evaluate(problem, levels)
        evaluated += 1
        if progress is not None and evaluated % 16 == 0:
            progress("search", 1.0 - alive.sum() / count)
        if not result.acceptable:
            alive &= ~np.all(nodes <= nodes[pick], axis=1)
        elif _better(result, best):
            best = result
            best_float = _key_float(problem, result)
        if problem.metric == "discernibility":
            above = np.all(nodes >= nodes[pick], axis=1)
            np.maximum(lb, np.where(above, float(result.dm_unsuppressed), lb), out=lb)
    if best is None:
        top = tuple(h - 1 for h in problem.heights)
        top_result = evaluate(problem, top)
        raise FailedPrecondition(
            f"no transformation satisfies the privacy model (k={problem.k}"
            + (f", l={problem.l}" if problem.l else "")
            + f"): even the most general one suppresses {top_result.suppressed} of "
            f"{problem.rows} rows and the suppression limit allows {problem.max_suppressed}"
        )
    if progress is not None:
        progress("search", 1.0)
    return SearchOutcome(best, count, evaluated, time.perf_counter() - start, exact=True)


def _product_cards(problem: Problem, nodes: np.ndarray) -> np.ndarray:
    """Per node, the product of level cardinalities (an upper bound on classes)."""
    out = np.ones(len(nodes), dtype=np.float64)
    for qi in range(len(problem.heights)):
        cards = np.array(problem.cards[qi], dtype=np.float64)
        out *= cards[nodes[:, qi]]
    return out


def _greedy(problem: Problem) -> tuple[NodeResult, int]:
    """Heuristic for huge lattices: climb from the bottom, then descend while it helps.

    Climb: raise the one quasi-identifier whose next level gives the fewest suppressed rows
    (then the lowest metric) until the transformation is acceptable. Descend: lower any
    quasi-identifier that keeps it acceptable and lowers the metric, until none does.
    """
    levels = tuple(0 for _ in problem.heights)
    current = evaluate(problem, levels)
    evaluated = 1
    while not current.acceptable:
        options: list[NodeResult] = []
        for qi, h in enumerate(problem.heights):
            if current.levels[qi] + 1 < h:
                nxt = list(current.levels)
                nxt[qi] += 1
                options.append(evaluate(problem, tuple(nxt)))
                evaluated += 1
        if not options:
            raise FailedPrecondition(
                f"no transformation satisfies the privacy model (k={problem.k}): even the most "
                f"general one suppresses {current.suppressed} of {problem.rows} rows and the "
                f"suppression limit allows {problem.max_suppressed}"
            )
        current = min(options, key=lambda r: (r.suppressed, r.metric_key, sum(r.levels), r.levels))
    improved = True
    while improved:
        improved = False
        for qi in range(len(problem.heights)):
            if current.levels[qi] == 0:
                continue
            lower = list(current.levels)
            lower[qi] -= 1
            trial = evaluate(problem, tuple(lower))
            evaluated += 1
            if trial.acceptable and _better(trial, current):
                current = trial
                improved = True
    return current, evaluated
