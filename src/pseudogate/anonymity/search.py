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
  acceptable metric found is never evaluated;
- slice probe (large tables): a pick is first grouped on a slice made of whole classes of it;
  if the slice alone suppresses too many rows, the pick is unacceptable.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
import pandas as pd

from pseudogate.errors import FailedPrecondition

__all__ = [
    "EXACT_LIMIT", "NodeResult", "Problem", "SearchOutcome", "dense_ids", "evaluate", "search",
]

#: Picks whose nearest cached table has at least this many rows are first tested on a
#: projection onto their three most detailed quasi-identifiers (cheaper, prunes more).
PROJECTION_MIN_ROWS = 100_000
#: Picks evaluated from a table of at least this many rows are first evaluated on a slice of
#: about 1/PROBE_SHARE of it made of whole classes: if the slice alone suppresses more rows than
#: allowed, the pick is unacceptable and the full grouping is skipped.
PROBE_MIN_ROWS = 100_000
PROBE_SHARE = 8
#: Grouping by one bincount over mixed-radix keys when the key space is at most this many
#: times the rows (beyond it, numbering the classes densely is cheaper).
KEYED_MAX_SPREAD = 2
#: Pair bounds of base tables with at least this many rows are computed on two threads.
PARALLEL_MIN_ROWS = 100_000
#: Climbing to maximal unacceptable nodes starts after this many unacceptable picks per QI.
CLIMB_AFTER_PER_QI = 2
#: Lattices with more transformations than this use the greedy heuristic.
EXACT_LIMIT = 1_000_000
_INT64_SAFE = 1 << 62
#: Base tables of at least this many rows memoise their codes at every level used.
_MEMO_MIN_ROWS = 100_000


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
    _maps: dict[tuple[int, int, int], np.ndarray] = field(default_factory=dict)
    _code_cover: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)
    _total_cover: dict[tuple[int, int], int] = field(default_factory=dict)
    _rows: int | None = None

    @property
    def rows(self) -> int:
        if self._rows is None:
            self._rows = int(self.counts.sum())
        return self._rows

    def level_map(self, qi: int, source: int, target: int) -> np.ndarray:
        """Level-``source`` code -> level-``target`` code of one QI (each code has one parent)."""
        key = (qi, source, target)
        got = self._maps.get(key)
        if got is None:
            got = np.empty(self.cards[qi][source], dtype=np.int64)
            got[self.up[qi][source]] = self.up[qi][target]
            self._maps[key] = got
        return got

    def code_cover(self, qi: int, level: int) -> np.ndarray:
        """Leaves covered by each level-``level`` code of one QI."""
        key = (qi, level)
        got = self._code_cover.get(key)
        if got is None:
            got = np.zeros(self.cards[qi][level], dtype=np.int64)
            got[self.up[qi][level]] = self.cover[qi][level]
            self._code_cover[key] = got
        return got

    def total_cover(self, qi: int, level: int) -> int:
        """Sum over all rows of the leaves their level-``level`` value covers."""
        key = (qi, level)
        got = self._total_cover.get(key)
        if got is None:
            got = int(self.counts @ self.cover[qi][level][self.leaf_codes[qi]])
            self._total_cover[key] = got
        return got

    def base_table(self) -> ClassTable:
        extra = [codes for codes, _ in self.diversity]
        if self.persons is not None:
            extra.append(self.persons[0])
        if len(self.counts) < _MEMO_MIN_ROWS:
            return ClassTable(tuple(0 for _ in self.heights), list(self.leaf_codes), extra,
                              self.counts)
        # Large: narrow codes (cheaper to combine) and memoised recoding.
        codes = [c.astype(np.int32) if len(up[0]) < 1 << 31 else c
                 for c, up in zip(self.leaf_codes, self.up, strict=True)]
        return ClassTable(tuple(0 for _ in self.heights), codes, extra, self.counts,
                          recoded={}, unit_counts=bool((self.counts == 1).all()))


@dataclass(frozen=True)
class ClassTable:
    """Distinct rows (QI codes at ``levels`` + sensitive/person codes) with their row counts.

    A coarser transformation's classes are unions of a finer one's, so it is evaluated from
    the smallest cached table below it instead of from the base table (roll-up).
    """

    levels: tuple[int, ...]
    codes: list[np.ndarray]
    extra: list[np.ndarray]
    counts: np.ndarray
    #: Memoised codes at other levels, keyed by (qi, level), for large tables that many
    #: transformations roll up from (None: not memoised).
    recoded: dict[tuple[int, int], np.ndarray] | None = field(default=None, compare=False)
    #: Every count is 1 (so sizes are plain bincounts, without weights).
    unit_counts: bool = False

    def __len__(self) -> int:
        return len(self.counts)

    def group_sizes(self, groups: np.ndarray, n_groups: int) -> np.ndarray:
        """Rows per group id (ids < ``n_groups``), as int64."""
        if self.unit_counts:
            return np.bincount(groups, minlength=n_groups)
        return np.bincount(groups, weights=self.counts, minlength=n_groups).astype(np.int64)

    def codes_at(self, problem: Problem, qi: int, level: int) -> np.ndarray:
        """This table's codes of one QI generalised to ``level``."""
        if self.levels[qi] == level:
            return self.codes[qi]
        if self.recoded is None:
            return problem.level_map(qi, self.levels[qi], level)[self.codes[qi]]
        got = self.recoded.get((qi, level))
        if got is None:
            got = problem.level_map(qi, self.levels[qi], level)[self.codes[qi]]
            got = got.astype(np.int32 if problem.cards[qi][level] < 1 << 31 else np.int64)
            self.recoded[(qi, level)] = got
        return got


@dataclass(frozen=True)
class NodeResult:
    """One evaluated transformation (class ids refer to the rows of the table it came from)."""

    levels: tuple[int, ...]
    suppressed: int
    acceptable: bool
    classes: int  # classes among kept rows
    smallest: int  # smallest kept class size (rows, or persons with person counting)
    metric_key: int  # exact comparison key (lower is better)
    loss_terms: tuple[tuple[int, int], ...]  # per QI (numerator, denominator) of loss_i
    discernibility: int
    dm_unsuppressed: int  # sum of squared class sizes without suppression
    class_of_row: np.ndarray | None  # dense class id per source-table row (None: not asked)
    kept_class: np.ndarray | None  # per class: kept?
    l_achieved: int | None

    @property
    def loss_per_column(self) -> tuple[float, ...]:
        return tuple(num / den if den else 0.0 for num, den in self.loss_terms)

    @property
    def loss(self) -> float:
        """prod(1 + loss_i) ** (1/n) - 1, from the exact rational product."""
        if not self.loss_terms:
            return 0.0
        product = Fraction(1)
        for num, den in self.loss_terms:
            if den:
                product *= Fraction(den + num, den)
        return max(float(product) ** (1.0 / len(self.loss_terms)) - 1.0, 0.0)


@dataclass(frozen=True)
class SearchOutcome:
    best: NodeResult
    transformations: int
    evaluated: int
    seconds: float
    exact: bool


def dense_ids(columns: list[tuple[np.ndarray, int]], rows: int) -> tuple[np.ndarray, int]:
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
        dense_of = np.cumsum(present, dtype=np.int64 if size >= 1 << 31 else np.int32)
        dense_of -= 1
        return dense_of[key].astype(np.int64), int(dense_of[-1]) + 1
    dense, uniques = pd.factorize(key, sort=False)
    return dense.astype(np.int64), len(uniques)


def _distinct_per_class(cls: np.ndarray, n_classes: int, codes: np.ndarray, card: int,
                        counts: np.ndarray | None = None) -> np.ndarray:
    pair = cls * max(card, 1) + codes
    uniq = pd.unique(pair)
    return np.bincount(uniq // max(card, 1), minlength=n_classes)


def evaluate(problem: Problem, levels: tuple[int, ...], source: ClassTable | None = None,
             *, table_limit: int | None = None, suppression_only: bool = False,
             with_classes: bool = True) -> tuple[NodeResult, ClassTable | None]:
    """Classes, suppression, acceptability and exact metrics of one transformation.

    ``source`` is any evaluated table at or below ``levels`` (default: the base table).
    Returns the result and this transformation's own (smaller) table for later roll-ups;
    an unacceptable transformation with more than ``table_limit`` classes returns no table and
    no Loss terms (nobody would use them), which saves most of the work on huge tables;
    ``suppression_only`` does the same whatever the outcome (the probe needs nothing more).
    Without ``with_classes`` the result may carry no class ids per row (the search does not
    need them), which allows grouping on mixed-radix keys without numbering the classes.
    """
    if source is None:
        source = problem.base_table()
    rows = len(source)
    codes = [source.codes_at(problem, qi, level) for qi, level in enumerate(levels)]
    cards = [problem.cards[qi][lv] for qi, lv in enumerate(levels)]
    if not with_classes and not source.extra:
        keyed = _evaluate_keyed(problem, levels, source, codes, cards, table_limit=table_limit,
                                suppression_only=suppression_only)
        if keyed is not None:
            return keyed
    cls, n_classes = dense_ids(list(zip(codes, cards, strict=True)), rows)
    counts = source.counts
    sizes = np.bincount(cls, weights=counts, minlength=n_classes).astype(np.int64)
    n_div = len(problem.diversity)
    strength = sizes
    if problem.persons is not None:
        strength = _distinct_per_class(cls, n_classes, source.extra[n_div], problem.persons[1])
    fail = strength < problem.k
    l_min: np.ndarray | None = None
    if problem.diversity:
        per = [_distinct_per_class(cls, n_classes, source.extra[j], card)
               for j, (_, card) in enumerate(problem.diversity)]
        l_min = np.minimum.reduce(per)
        if problem.l is not None:
            fail |= l_min < problem.l
    suppressed = int(sizes[fail].sum())
    kept = ~fail
    n = problem.rows
    dm_all = int(sizes @ sizes)
    kept_sizes = sizes[kept]
    dm = int(kept_sizes @ kept_sizes) + n * suppressed
    if suppression_only or (table_limit is not None and suppressed > problem.max_suppressed
                            and n_classes > table_limit):
        return NodeResult(
            levels=levels, suppressed=suppressed,
            acceptable=suppressed <= problem.max_suppressed, classes=int(kept.sum()),
            smallest=int(strength[kept].min()) if kept.any() else 0, metric_key=-1,
            loss_terms=(), discernibility=dm, dm_unsuppressed=dm_all, class_of_row=cls,
            kept_class=kept, l_achieved=None,
        ), None
    first = np.empty(n_classes, dtype=np.int64)
    first[cls] = np.arange(rows, dtype=np.int64)
    class_codes = [c[first] for c in codes]
    failed_sizes = sizes[fail] if suppressed else None
    terms, key = _loss_terms(problem, levels, class_codes, failed_sizes, fail, suppressed, n)
    result = NodeResult(
        levels=levels,
        suppressed=suppressed,
        acceptable=suppressed <= problem.max_suppressed,
        classes=int(kept.sum()),
        smallest=int(strength[kept].min()) if kept.any() else 0,
        metric_key=key if problem.metric == "loss" else dm,
        loss_terms=tuple(terms),
        discernibility=dm,
        dm_unsuppressed=dm_all,
        class_of_row=cls,
        kept_class=kept,
        l_achieved=int(l_min[kept].min()) if l_min is not None and kept.any() else None,
    )
    if not source.extra:
        table = ClassTable(levels, class_codes, [], sizes)
    else:
        parts = [(cls, n_classes)] + [
            (e, card) for e, (_, card) in zip(source.extra, _extra_cards(problem), strict=True)
        ]
        group, n_groups = dense_ids(parts, rows)
        g_first = np.empty(n_groups, dtype=np.int64)
        g_first[group] = np.arange(rows, dtype=np.int64)
        table = ClassTable(levels, [c[g_first] for c in codes], [e[g_first] for e in source.extra],
                           np.bincount(group, weights=counts, minlength=n_groups).astype(np.int64))
    return result, table


def _evaluate_keyed(problem: Problem, levels: tuple[int, ...], source: ClassTable,
                    codes: list[np.ndarray], cards: list[int], *, table_limit: int | None,
                    suppression_only: bool) -> tuple[NodeResult, ClassTable | None] | None:
    """``evaluate`` for tables without sensitive/person codes whose key space is small.

    Class sizes come from one ``bincount`` over the mixed-radix key of the generalised codes
    (no dense class numbering); the codes of a class are decoded from its key. Returns None
    when the key space is too large for that (the caller groups by hashing instead).
    """
    rows = len(source)
    used = [qi for qi, card in enumerate(cards) if card > 1]
    size = math.prod(cards[qi] for qi in used)
    if size >= 1 << 31 or size > KEYED_MAX_SPREAD * rows:
        return None
    if used:
        key = codes[used[0]].astype(np.int32, copy=True)
        for qi in used[1:]:
            key *= cards[qi]
            key += codes[qi]
    else:
        key = np.zeros(rows, dtype=np.int32)
    by_key = source.group_sizes(key, size)
    class_keys = np.flatnonzero(by_key)
    sizes = by_key[class_keys]
    n_classes = len(sizes)
    fail = sizes < problem.k
    suppressed = int(sizes[fail].sum())
    kept = ~fail
    n = problem.rows
    dm_all = int(sizes @ sizes)
    kept_sizes = sizes[kept]
    dm = int(kept_sizes @ kept_sizes) + n * suppressed
    acceptable = suppressed <= problem.max_suppressed
    smallest = int(kept_sizes.min()) if len(kept_sizes) else 0
    if suppression_only or (table_limit is not None and not acceptable
                            and n_classes > table_limit):
        return NodeResult(
            levels=levels, suppressed=suppressed, acceptable=acceptable,
            classes=len(kept_sizes), smallest=smallest, metric_key=-1, loss_terms=(),
            discernibility=dm, dm_unsuppressed=dm_all, class_of_row=None, kept_class=None,
            l_achieved=None,
        ), None
    # Decode each class's code per QI from its key (the last used QI varies fastest).
    class_codes: list[np.ndarray] = [np.zeros(n_classes, dtype=np.int32) for _ in levels]
    rest = class_keys
    for qi in reversed(used):
        rest, class_codes[qi] = np.divmod(rest, cards[qi])
    failed_sizes = sizes[fail] if suppressed else None
    terms, metric_key = _loss_terms(problem, levels, class_codes, failed_sizes, fail, suppressed, n)
    result = NodeResult(
        levels=levels, suppressed=suppressed, acceptable=acceptable, classes=len(kept_sizes),
        smallest=smallest, metric_key=metric_key if problem.metric == "loss" else dm,
        loss_terms=tuple(terms), discernibility=dm, dm_unsuppressed=dm_all, class_of_row=None,
        kept_class=None, l_achieved=None,
    )
    if table_limit is not None and n_classes > table_limit:
        return result, None
    return result, ClassTable(levels, class_codes, [], sizes)


def _extra_cards(problem: Problem) -> list[tuple[None, int]]:
    cards: list[tuple[None, int]] = [(None, card) for _, card in problem.diversity]
    if problem.persons is not None:
        cards.append((None, problem.persons[1]))
    return cards


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
    pairs = list(itertools.combinations(range(q), 2)) if q >= 2 else [(0, 0)] if q else []

    def pair_table(pair: tuple[int, int]) -> np.ndarray:
        # Group base rows by the two leaf codes first: every level pair works on that.
        i, j = pair
        ci, cj = problem.leaf_codes[i], problem.leaf_codes[j]
        dj = len(problem.up[j][0]) if i != j else 1
        joint = ci.astype(np.int64) * dj + (cj if i != j else 0)
        cells = len(problem.up[i][0]) * dj
        if cells <= KEYED_MAX_SPREAD * len(counts):
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


def _pair_table(problem: Problem, i: int, j: int, leaf_i: np.ndarray, leaf_j: np.ndarray,
                weights: np.ndarray) -> np.ndarray:
    """Rows in groups smaller than k, for every (level of i, level of j).

    Level pairs with few possible groups share one ``bincount`` (offset keys); the others
    are grouped one by one. ``leaf_i``/``leaf_j`` are the distinct leaf pairs (weights: rows).
    """
    hi = problem.heights[i]
    hj = problem.heights[j] if i != j else 1
    rows = len(leaf_i)
    k = problem.k
    out = np.zeros(hi * hj, dtype=np.int64)
    batch_keys: list[np.ndarray] = []
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


class _LowerBound:
    """Lower bounds on the metric key of every node, tightened as suppression bounds grow.

    Loss: numerator_i = A0_i - N + sum over suppressed rows of (D_i - cover) >=
    A0_i - N + S * (D_i - largest cover at the level), so a bound S_lb on suppressed rows
    gives a bound on the exact key (as a log). Discernibility: DM >= (N - S)^2 / C + N * S
    (increasing in S for C >= 2 classes at most) and DM >= DM without suppression of any
    evaluated finer node.
    """

    def __init__(self, problem: Problem, nodes: np.ndarray, supp_lb: np.ndarray) -> None:
        self.problem = problem
        self.nodes = nodes
        self.loss = problem.metric == "loss"
        n = problem.rows
        self.n = float(n)
        self.terms: list[tuple[int, np.ndarray, np.ndarray, float]] = []
        for qi in range(len(problem.heights)):
            d = problem.leaves[qi]
            if d <= 1 or n == 0:
                continue
            base = np.array([problem.total_cover(qi, lv) - n
                             for lv in range(problem.heights[qi])], dtype=np.float64)
            slope = np.array([d - int(problem.cover[qi][lv].max(initial=0))
                              for lv in range(problem.heights[qi])], dtype=np.float64)
            self.terms.append((qi, base, slope, float(n * (d - 1))))
        self.classes_ub = np.minimum(_product_cards(problem, nodes), max(len(problem.counts), 1))
        self.floor = np.zeros(len(nodes), dtype=np.float64)  # evaluated-node bounds (DM)
        self.values = self.compute(np.arange(len(nodes)), supp_lb)

    def compute(self, idx: np.ndarray, supp_lb: np.ndarray) -> np.ndarray:
        s = supp_lb[idx].astype(np.float64)
        if self.loss:
            out = np.zeros(len(idx), dtype=np.float64)
            for qi, base, slope, den in self.terms:
                levels = self.nodes[idx, qi]
                out += np.log(den + np.maximum(0.0, base[levels] + s * slope[levels]))
            return out
        c = self.classes_ub[idx]
        kept = self.n - s
        bound = np.where(c >= 2, kept * kept / np.maximum(c, 1.0) + self.n * s,
                         np.maximum(self.n * self.n / np.maximum(c, 1.0), self.n * s))
        return np.maximum(bound, self.floor[idx])

    def update(self, idx: np.ndarray, supp_lb: np.ndarray) -> None:
        self.values[idx] = np.maximum(self.values[idx], self.compute(idx, supp_lb))


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
    bounds = _LowerBound(problem, nodes, supp_lb)
    lb = bounds.values
    tol = 1e-9 if problem.metric == "loss" else 0.5
    strides = np.ones(len(problem.heights), dtype=np.int64)
    for qi in range(len(problem.heights) - 2, -1, -1):
        strides[qi] = strides[qi + 1] * problem.heights[qi + 1]
    state = _State(problem, nodes, alive, supp_lb, bounds, _TableCache(problem, count))

    def index_of(levels: np.ndarray) -> int:
        return int(levels.astype(np.int64) @ strides) if len(strides) else 0

    unacceptable_picks = 0
    climb_after = CLIMB_AFTER_PER_QI * len(problem.heights)
    while True:
        candidates = np.flatnonzero(state.alive)
        if not len(candidates):
            break
        cand_lb = lb[candidates]
        low = cand_lb.min()
        if low > state.best_float + tol:
            break
        near = candidates[cand_lb <= low + tol]
        pick = int(near[np.argmin(rank[near])])
        if len(state.cache.source_for(nodes[pick])) >= PROJECTION_MIN_ROWS and \
                state.prune_by_projection(pick):
            continue
        result = state.visit(pick)
        if progress is not None and state.evaluated % 16 == 0:
            progress("search", 1.0 - state.alive.sum() / count)
        if not result.acceptable:
            unacceptable_picks += 1
        if not result.acceptable and unacceptable_picks > climb_after and state.alive.any():
            # Climb to a maximal unacceptable node: its whole down-set is pruned at once.
            # Only after a few unacceptable picks: near-optimal lattices (0% suppression) end
            # before climbing pays for itself.
            current = nodes[pick].copy()
            for qi in range(len(problem.heights)):
                lo, hi = int(current[qi]), problem.heights[qi] - 1
                while lo < hi:
                    mid = (lo + hi + 1) // 2
                    trial = current.copy()
                    trial[qi] = mid
                    if state.unacceptable(index_of(trial)):
                        lo = mid
                    else:
                        hi = mid - 1
                current[qi] = lo
            state.prune_below(index_of(current))
    best, evaluated = state.best, state.evaluated
    if best is None:
        top = tuple(h - 1 for h in problem.heights)
        top_result, _ = evaluate(problem, top)
        raise FailedPrecondition(
            f"no transformation satisfies the privacy model (k={problem.k}"
            + (f", l={problem.l}" if problem.l else "")
            + f"): even the most general one suppresses {top_result.suppressed} of "
            f"{problem.rows} rows and the suppression limit allows {problem.max_suppressed}"
        )
    if progress is not None:
        progress("search", 1.0)
    # Re-evaluate the winner from the base table so its class ids refer to base rows.
    final, _ = evaluate(problem, best.levels)
    return SearchOutcome(final, count, evaluated, time.perf_counter() - start, exact=True)


class _State:
    """What the search knows about every node: unknown, acceptable or unacceptable."""

    UNKNOWN, ACCEPTABLE, UNACCEPTABLE = 0, 1, 2

    def __init__(self, problem: Problem, nodes: np.ndarray, alive: np.ndarray,
                 supp_lb: np.ndarray, bounds: _LowerBound, cache: _TableCache) -> None:
        self.problem = problem
        self.nodes = nodes
        self.alive = alive  # unknown and not yet evaluated
        self.status = np.where(alive, self.UNKNOWN, self.UNACCEPTABLE).astype(np.int8)
        self.supp_lb = supp_lb
        self.bounds = bounds
        self.cache = cache
        self.best: NodeResult | None = None
        self.best_float = math.inf
        self.evaluated = 0
        self._projections: dict[tuple[tuple[int, ...], tuple[int, ...]], int] = {}
        self._slices: dict[tuple[int, int, int], ClassTable] = {}

    def prune_below(self, index: int) -> None:
        below = np.all(self.nodes <= self.nodes[index], axis=1)
        self.status[below & (self.status == self.UNKNOWN)] = self.UNACCEPTABLE
        self.alive &= ~below

    def projection_suppressed(self, qis: tuple[int, ...], levels: tuple[int, ...]) -> int:
        """Rows in groups of fewer than k rows of the projection onto ``qis`` at ``levels``.

        Every transformation at or below those levels on those QIs suppresses at least as
        many rows (its classes are subsets of the projection's groups).
        """
        key = (qis, levels)
        got = self._projections.get(key)
        if got is None:
            problem = self.problem
            base = self.cache.tables[0]
            columns = [(base.codes_at(problem, qi, lv), problem.cards[qi][lv])
                       for qi, lv in zip(qis, levels)]
            size = math.prod(card for _, card in columns)
            if size <= KEYED_MAX_SPREAD * len(base):
                combined = columns[0][0].astype(np.int32, copy=True)
                for codes, card in columns[1:]:
                    combined *= card
                    combined += codes
                sizes = base.group_sizes(combined, size)
            else:
                group, n_groups = dense_ids(columns, len(base))
                sizes = base.group_sizes(group, n_groups)
            got = int(sizes[sizes < problem.k].sum())
            self._projections[key] = got
        return got

    def prune_by_projection(self, index: int) -> bool:
        """Try to prove a pick unacceptable on its three most detailed QIs, then climb there.

        On success every node at or below the climbed levels on those QIs is pruned (whatever
        its other levels), which is far more than the pick's own down-set.
        """
        problem, node = self.problem, self.nodes[index]
        q = len(problem.heights)
        if q < 3:
            return False
        order = sorted(range(q), key=lambda qi: -problem.cards[qi][int(node[qi])])
        qis = tuple(sorted(order[:3]))
        levels = [int(node[qi]) for qi in qis]
        limit = problem.max_suppressed
        if self.projection_suppressed(qis, tuple(levels)) <= limit:
            return False
        for pos, qi in enumerate(qis):
            lo, hi = levels[pos], problem.heights[qi] - 1
            while lo < hi:
                mid = (lo + hi + 1) // 2
                trial = list(levels)
                trial[pos] = mid
                if self.projection_suppressed(qis, tuple(trial)) > limit:
                    lo = mid
                else:
                    hi = mid - 1
            levels[pos] = lo
        region = np.all(self.nodes[:, list(qis)] <= np.array(levels, dtype=self.nodes.dtype),
                        axis=1)
        self.status[region & (self.status == self.UNKNOWN)] = self.UNACCEPTABLE
        self.alive &= ~region
        return True

    def probe(self, levels: tuple[int, ...], source: ClassTable) -> NodeResult | None:
        """An unacceptable result proven on a slice of ``source``, or None if not proven.

        The slice is the rows whose code of one QI, at the pick's level, is among a few codes:
        every class of the pick lies entirely inside or outside it, so the rows the slice
        suppresses are suppressed by the pick too (a lower bound on its suppression).
        """
        problem = self.problem
        free = [qi for qi, lv in enumerate(levels) if problem.cards[qi][lv] >= 2]
        if not free:
            return None
        qi = max(free, key=lambda q: problem.cards[q][levels[q]])
        part = self._slice(source, qi, levels[qi])
        result, _ = evaluate(problem, levels, part, suppression_only=True, with_classes=False)
        return None if result.acceptable else result

    def _slice(self, source: ClassTable, qi: int, level: int) -> ClassTable:
        key = (id(source), qi, level)
        got = self._slices.get(key)
        if got is None:
            problem = self.problem
            codes = source.codes[qi]
            if source.levels[qi] != level:
                codes = problem.level_map(qi, source.levels[qi], level)[codes]
            sizes = np.bincount(codes, weights=source.counts, minlength=problem.cards[qi][level])
            cut = int(np.searchsorted(np.cumsum(sizes), sizes.sum() / PROBE_SHARE)) + 1
            rows = np.flatnonzero(codes < cut)
            got = ClassTable(source.levels, [c[rows] for c in source.codes],
                             [e[rows] for e in source.extra], source.counts[rows], recoded={},
                             unit_counts=source.unit_counts)
            self._slices[key] = got
        return got

    def unacceptable(self, index: int) -> bool:
        if self.status[index] == self.UNKNOWN:
            if len(self.cache.source_for(self.nodes[index])) >= PROJECTION_MIN_ROWS and \
                    self.prune_by_projection(index):
                return True
            self.visit(index)
        return bool(self.status[index] == self.UNACCEPTABLE)

    def visit(self, index: int) -> NodeResult:
        """Evaluate one node and propagate what it teaches about the others."""
        problem, nodes = self.problem, self.nodes
        levels = tuple(int(v) for v in nodes[index])
        source = self.cache.source_for(nodes[index])
        result = self.probe(levels, source) if len(source) >= PROBE_MIN_ROWS else None
        table: ClassTable | None = None
        if result is None:
            result, table = evaluate(problem, levels, source, table_limit=self.cache.room(),
                                     with_classes=False)
        if table is not None:
            self.cache.add(nodes[index], table)
        self.evaluated += 1
        self.alive[index] = False
        if not result.acceptable:
            self.prune_below(index)
        else:
            self.status[index] = self.ACCEPTABLE
            if _better(result, self.best):
                self.best = result
                self.best_float = _key_float(problem, result)
            # Finer transformations suppress at least as many rows as this one.
            if result.suppressed:
                below = np.all(nodes <= nodes[index], axis=1)
                grow = np.flatnonzero(below & self.alive & (self.supp_lb < result.suppressed))
                if len(grow):
                    self.supp_lb[grow] = result.suppressed
                    self.bounds.update(grow, self.supp_lb)
        if problem.metric == "discernibility":
            above = np.flatnonzero(np.all(nodes >= nodes[index], axis=1) & self.alive)
            floor = self.bounds.floor
            floor[above] = np.maximum(floor[above], float(result.dm_unsuppressed))
            self.bounds.values[above] = np.maximum(self.bounds.values[above], floor[above])
        return result


class _TableCache:
    """Evaluated class tables, for rolling up coarser transformations from the smallest one."""

    BUDGET = 32_000_000  # cached cells (codes and counts) in all

    def __init__(self, problem: Problem, capacity: int) -> None:
        q = len(problem.heights)
        self.levels = np.zeros((capacity + 1, q), dtype=np.int16)
        self.rows = np.zeros(capacity + 1, dtype=np.int64)
        self.tables: list[ClassTable] = [problem.base_table()]
        self.rows[0] = len(self.tables[0])
        self.width = q + len(self.tables[0].extra) + 1
        self.used = self.width * len(self.tables[0])

    def source_for(self, levels: np.ndarray) -> ClassTable:
        n = len(self.tables)
        below = np.all(self.levels[:n] <= levels, axis=1)
        return self.tables[int(np.argmin(np.where(below, self.rows[:n], np.iinfo(np.int64).max)))]

    def room(self) -> int:
        """Rows a new table may have and still be cached.

        Tables over half the base table's rows save little over the base and would fill the
        budget that smaller, more useful tables need.
        """
        if len(self.tables) >= len(self.rows):
            return 0
        return min(max(0, (self.BUDGET - self.used) // self.width), int(self.rows[0]) // 2)

    def add(self, levels: np.ndarray, table: ClassTable) -> None:
        if len(table) > self.room():
            return
        cells = self.width * len(table)
        self.levels[len(self.tables)] = levels
        self.rows[len(self.tables)] = len(table)
        self.tables.append(table)
        self.used += cells


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
    current, _ = evaluate(problem, levels)
    evaluated = 1
    while not current.acceptable:
        options: list[NodeResult] = []
        for qi, h in enumerate(problem.heights):
            if current.levels[qi] + 1 < h:
                nxt = list(current.levels)
                nxt[qi] += 1
                options.append(evaluate(problem, tuple(nxt))[0])
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
            trial, _ = evaluate(problem, tuple(lower))
            evaluated += 1
            if trial.acceptable and _better(trial, current):
                current = trial
                improved = True
    return current, evaluated


def _loss_terms(
    problem: Problem,
    levels: tuple[int, ...],
    class_codes: list[np.ndarray],
    failed_sizes: np.ndarray | None,
    fail: np.ndarray,
    suppressed: int,
    n: int,
) -> tuple[list[tuple[int, int]], int]:
    """Loss as exact rationals per QI: numerator A_i + S*D_i - N over N*(D_i - 1), clipped at 0.

    Also returns the product of (den + num) over the QIs, an exact integer key that orders
    transformations by Loss without floating point.
    """
    terms: list[tuple[int, int]] = []
    key = 1
    for qi, level in enumerate(levels):
        d = problem.leaves[qi]
        if d <= 1 or n == 0:
            terms.append((0, 0))
            continue
        covered = problem.total_cover(qi, level)
        if failed_sizes is not None:
            covered -= int(failed_sizes @ problem.code_cover(qi, level)[class_codes[qi][fail]])
        num = max(0, covered + suppressed * d - n)
        den = n * (d - 1)
        terms.append((num, den))
        key *= den + num
    return terms, key
