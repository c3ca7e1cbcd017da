"""Optimal full-domain global recoding: the search over the generalisation lattice.

The pieces live beside it: ``lattice`` (transformations, down-sets, climbing), ``criteria``
(k-anonymity, l-diversity, suppression bounds), ``metrics`` (Loss, discernibility, lower
bounds), ``transformation`` (evaluating one transformation from a class table).

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

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pseudogate.anonymity import grouping
from pseudogate.anonymity.arrays import BoolArray, Int64Array, LevelArray
from pseudogate.anonymity.criteria import pair_suppression_bound, small_class_rows
from pseudogate.anonymity.grouping import dense_ids
from pseudogate.anonymity.lattice import Lattice, climb
from pseudogate.anonymity.metrics import METRICS, LowerBound
from pseudogate.anonymity.transformation import ClassTable, NodeResult, Problem, evaluate
from pseudogate.core.errors import FailedPrecondition

__all__ = [
    "EXACT_LIMIT", "NodeResult", "Problem", "SearchOutcome", "better", "dense_ids", "evaluate",
    "search",
]

#: Picks whose nearest cached table has at least this many rows are first tested on a
#: projection onto their three most detailed quasi-identifiers (cheaper, prunes more).
PROJECTION_MIN_ROWS = 100_000
#: Picks evaluated from a table of at least this many rows are first evaluated on a slice of
#: about 1/PROBE_SHARE of it made of whole classes: if the slice alone suppresses more rows than
#: allowed, the pick is unacceptable and the full grouping is skipped.
PROBE_MIN_ROWS = 100_000
PROBE_SHARE = 8
#: Climbing to maximal unacceptable nodes starts after this many unacceptable picks per QI.
CLIMB_AFTER_PER_QI = 2
#: Lattices with more transformations than this use the greedy heuristic.
EXACT_LIMIT = 1_000_000


@dataclass(frozen=True)
class SearchOutcome:
    """The chosen transformation (class ids refer to base rows), the lattice size, the
    transformations evaluated, the search's seconds, and whether it was the exact search."""

    best: NodeResult
    transformations: int
    evaluated: int
    seconds: float
    exact: bool


def better(a: NodeResult, b: NodeResult | None) -> bool:
    """The search's order: lower metric key, then lower level sum, then lexicographic."""
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
        greedy, evaluated = _greedy(problem)
        return SearchOutcome(greedy, total, evaluated, time.perf_counter() - start, exact=False)
    lattice = Lattice.of(problem.heights)
    nodes = lattice.nodes
    count = len(lattice)
    alive = np.ones(count, dtype=bool)
    supp_lb = np.zeros(count, dtype=np.int64)
    if problem.heights:
        supp_lb = pair_suppression_bound(problem, nodes)
        alive &= supp_lb <= problem.max_suppressed
    rank = lattice.rank()  # ties: level sum, then lexicographic
    rules = METRICS[problem.metric]
    bounds = rules.lower_bound(problem, nodes, supp_lb)
    lb = bounds.values
    tol = rules.tolerance
    state = _State(problem, lattice, alive, supp_lb, bounds, _TableCache(problem, count))

    def unacceptable(levels: tuple[int, ...]) -> bool:
        return state.unacceptable(lattice.index_of(levels))

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
            top = climb(lattice.levels_of(pick), lattice.tops, unacceptable)
            state.prune_below(lattice.index_of(top))
    best, evaluated = state.best, state.evaluated
    if best is None:
        top_result, _ = evaluate(problem, lattice.tops)
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

    def __init__(self, problem: Problem, lattice: Lattice, alive: BoolArray,
                 supp_lb: Int64Array, bounds: LowerBound, cache: _TableCache) -> None:
        self.problem = problem
        self.lattice = lattice
        self.nodes = lattice.nodes
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
        below = self.lattice.below(index)
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
            if size <= grouping.KEYED_MAX_SPREAD * len(base):
                combined = columns[0][0].astype(np.int32, copy=True)
                for codes, card in columns[1:]:
                    combined *= card
                    combined += codes
                sizes = base.group_sizes(combined, size)
            else:
                group, n_groups = dense_ids(columns, len(base))
                sizes = base.group_sizes(group, n_groups)
            got = small_class_rows(sizes, problem.k)
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
        levels = tuple(int(node[qi]) for qi in qis)
        limit = problem.max_suppressed

        def too_many(trial: tuple[int, ...]) -> bool:
            return self.projection_suppressed(qis, trial) > limit

        if not too_many(levels):
            return False
        levels = climb(levels, [problem.heights[qi] - 1 for qi in qis], too_many)
        region = self.lattice.below_on(qis, levels)
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
            if better(result, self.best):
                self.best = result
                self.best_float = METRICS[problem.metric].log_key(result.metric_key)
            # Finer transformations suppress at least as many rows as this one.
            if result.suppressed:
                below = self.lattice.below(index)
                grow = np.flatnonzero(below & self.alive & (self.supp_lb < result.suppressed))
                if len(grow):
                    self.supp_lb[grow] = result.suppressed
                    self.bounds.update(grow, self.supp_lb)
        self.bounds.learn(index, result, self.alive)
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

    def source_for(self, levels: LevelArray) -> ClassTable:
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

    def add(self, levels: LevelArray, table: ClassTable) -> None:
        if len(table) > self.room():
            return
        cells = self.width * len(table)
        self.levels[len(self.tables)] = levels
        self.rows[len(self.tables)] = len(table)
        self.tables.append(table)
        self.used += cells


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
            if trial.acceptable and better(trial, current):
                current = trial
                improved = True
    return current, evaluated

