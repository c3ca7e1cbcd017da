"""Quality metrics: ARX's Loss and discernibility, their exact keys and lower bounds.

A policy names its metric (:class:`Metric`); :data:`METRICS` holds one small class per
metric with everything the search needs to know about it: the exact key of an evaluated
transformation (lower is better), that key on the scale of the lower bounds, the tolerance
within which near-ties are still evaluated, and the lower bounds themselves.

Loss is compared exactly as the integer product of its per-column rational factors over a
common denominator (:func:`loss_terms`), discernibility as an integer (docs/anonymisation.md).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from fractions import Fraction
from typing import TYPE_CHECKING, ClassVar, Protocol

import numpy as np

from pseudogate.anonymity.arrays import BoolArray, FloatArray, Int64Array, IntArray, LevelArray
from pseudogate.core.policy import Metric

if TYPE_CHECKING:
    from pseudogate.anonymity.transformation import NodeResult, Problem

__all__ = ["METRICS", "DiscernibilityMetric", "Figures", "LossMetric", "LowerBound", "Metric",
           "MetricRules", "loss_per_column", "loss_terms", "loss_terms_from", "loss_value"]


class Figures(Protocol):
    """What the metrics' bounds need of a problem: its hierarchies and column totals, not its
    rows (a :class:`~pseudogate.anonymity.transformation.Problem`, or the marginal figures of a
    table too large to hold, pseudogate.batch.cluster_search)."""

    @property
    def heights(self) -> tuple[int, ...]: ...

    @property
    def leaves(self) -> tuple[int, ...]: ...

    @property
    def cards(self) -> Sequence[tuple[int, ...]]: ...

    @property
    def cover(self) -> Sequence[tuple[IntArray, ...]]: ...

    @property
    def rows(self) -> int: ...

    @property
    def base_rows(self) -> int:
        """Distinct rows of the base table (an upper bound on any transformation's classes)."""
        ...

    def total_cover(self, qi: int, level: int) -> int:
        """Sum over all rows of the leaves their level-``level`` value covers."""
        ...


def loss_per_column(terms: tuple[tuple[int, int], ...]) -> tuple[float, ...]:
    """loss_i of each quasi-identifier from its exact (numerator, denominator)."""
    return tuple(num / den if den else 0.0 for num, den in terms)


def loss_value(terms: tuple[tuple[int, int], ...]) -> float:
    """prod(1 + loss_i) ** (1/n) - 1, from the exact rational product."""
    if not terms:
        return 0.0
    product = Fraction(1)
    for num, den in terms:
        if den:
            product *= Fraction(den + num, den)
    root: float = float(product) ** (1.0 / len(terms))  # a positive base: never complex
    return max(root - 1.0, 0.0)


def loss_terms(
    problem: Problem,
    levels: tuple[int, ...],
    class_codes: list[IntArray],
    failed_sizes: Int64Array | None,
    fail: BoolArray,
    suppressed: int,
    n: int,
) -> tuple[list[tuple[int, int]], int]:
    """Loss as exact rationals per QI: numerator A_i + S*D_i - N over N*(D_i - 1), clipped at 0.

    Also returns the product of (den + num) over the QIs, an exact integer key that orders
    transformations by Loss without floating point.
    """
    def failed_cover(qi: int, level: int) -> int:
        if failed_sizes is None:
            return 0
        return int(failed_sizes @ problem.code_cover(qi, level)[class_codes[qi][fail]])

    return loss_terms_from(problem, levels, failed_cover, suppressed, n)


def loss_terms_from(figures: Figures, levels: tuple[int, ...],
                    failed_cover: Callable[[int, int], int], suppressed: int, n: int
                    ) -> tuple[list[tuple[int, int]], int]:
    """:func:`loss_terms` from the leaves covered by the suppressed rows, per QI and level
    (``failed_cover(qi, level)``): Loss is a sum over classes, so parts of a table can each
    count their own."""
    terms: list[tuple[int, int]] = []
    key = 1
    for qi, level in enumerate(levels):
        d = figures.leaves[qi]
        if d <= 1 or n == 0:
            terms.append((0, 0))
            continue
        covered = figures.total_cover(qi, level) - failed_cover(qi, level)
        num = max(0, covered + suppressed * d - n)
        den = n * (d - 1)
        terms.append((num, den))
        key *= den + num
    return terms, key



class LowerBound:
    """Lower bounds on the metric key of every node (on the scale of ``MetricRules.log_key``),
    tightened as the search learns bounds on suppression and evaluates nodes."""

    def __init__(self, problem: Figures, nodes: LevelArray, supp_lb: Int64Array) -> None:
        self.problem = problem
        self.nodes = nodes
        self.n = float(problem.rows)
        self.values = self.compute(np.arange(len(nodes)), supp_lb)

    def compute(self, idx: IntArray, supp_lb: Int64Array) -> FloatArray:
        raise NotImplementedError

    def update(self, idx: IntArray, supp_lb: Int64Array) -> None:
        """Tighten the bounds of nodes ``idx`` after their suppression bounds grew."""
        self.values[idx] = np.maximum(self.values[idx], self.compute(idx, supp_lb))

    def learn(self, index: int, result: NodeResult, alive: BoolArray) -> None:
        """Tighten bounds of the ``alive`` nodes from node ``index``'s evaluation (if it can)."""


class _LossLowerBound(LowerBound):
    """numerator_i = A0_i - N + sum over suppressed rows of (D_i - cover) >=
    A0_i - N + S * (D_i - largest cover at the level), so a bound S_lb on suppressed rows gives
    a bound on the exact key (as a log)."""

    def __init__(self, problem: Figures, nodes: LevelArray, supp_lb: Int64Array) -> None:
        n = problem.rows
        self.terms: list[tuple[int, FloatArray, FloatArray, float]] = []
        for qi in range(len(problem.heights)):
            d = problem.leaves[qi]
            if d <= 1 or n == 0:
                continue
            base = np.array([problem.total_cover(qi, lv) - n
                             for lv in range(problem.heights[qi])], dtype=np.float64)
            slope = np.array([d - int(problem.cover[qi][lv].max(initial=0))
                              for lv in range(problem.heights[qi])], dtype=np.float64)
            self.terms.append((qi, base, slope, float(n * (d - 1))))
        super().__init__(problem, nodes, supp_lb)

    def compute(self, idx: IntArray, supp_lb: Int64Array) -> FloatArray:
        s = supp_lb[idx].astype(np.float64)
        out = np.zeros(len(idx), dtype=np.float64)
        for qi, base, slope, den in self.terms:
            levels = self.nodes[idx, qi]
            out += np.log(den + np.maximum(0.0, base[levels] + s * slope[levels]))
        return out


class _DiscernibilityLowerBound(LowerBound):
    """DM >= (N - S)^2 / C + N * S (increasing in S for C >= 2 classes at most) and DM >= DM
    without suppression of any evaluated finer node."""

    def __init__(self, problem: Figures, nodes: LevelArray, supp_lb: Int64Array) -> None:
        self.classes_ub = np.minimum(_product_cards(problem, nodes), max(problem.base_rows, 1))
        self.floor = np.zeros(len(nodes), dtype=np.float64)  # evaluated-node bounds
        super().__init__(problem, nodes, supp_lb)

    def compute(self, idx: IntArray, supp_lb: Int64Array) -> FloatArray:
        s = supp_lb[idx].astype(np.float64)
        c = self.classes_ub[idx]
        kept = self.n - s
        bound = np.where(c >= 2, kept * kept / np.maximum(c, 1.0) + self.n * s,
                         np.maximum(self.n * self.n / np.maximum(c, 1.0), self.n * s))
        return np.maximum(bound, self.floor[idx])

    def learn(self, index: int, result: NodeResult, alive: BoolArray) -> None:
        # Coarser nodes merge this node's classes: their DM is at least its unsuppressed DM.
        above = np.flatnonzero(np.all(self.nodes >= self.nodes[index], axis=1) & alive)
        floor = self.floor
        floor[above] = np.maximum(floor[above], float(result.dm_unsuppressed))
        self.values[above] = np.maximum(self.values[above], floor[above])


def _product_cards(problem: Figures, nodes: LevelArray) -> FloatArray:
    """Per node, the product of level cardinalities (an upper bound on classes)."""
    out = np.ones(len(nodes), dtype=np.float64)
    for qi in range(len(problem.heights)):
        cards = np.array(problem.cards[qi], dtype=np.float64)
        out *= cards[nodes[:, qi]]
    return out



class MetricRules(Protocol):
    """What the search needs to know about one metric."""

    metric: ClassVar[Metric]
    #: Nodes whose bound is within this of the best key found (``log_key`` scale) are still
    #: evaluated, so near-ties are decided exactly.
    tolerance: ClassVar[float]

    def key(self, *, loss_key: int, discernibility: int) -> int:
        """The exact comparison key of an evaluated transformation (lower is better)."""
        ...

    def log_key(self, key: int) -> float:
        """``key`` on the scale of the lower bounds."""
        ...

    def lower_bound(self, problem: Figures, nodes: LevelArray, supp_lb: Int64Array) -> LowerBound:
        """Lower bounds on the key of every node, from bounds on their suppressed rows."""
        ...


class LossMetric:
    """ARX's Loss: compared as the exact product of (1 + loss_i) over a common denominator."""

    metric: ClassVar[Metric] = Metric.LOSS
    tolerance: ClassVar[float] = 1e-9

    def key(self, *, loss_key: int, discernibility: int) -> int:
        return loss_key

    def log_key(self, key: int) -> float:
        return math.log(key) if key > 0 else 0.0

    def lower_bound(self, problem: Figures, nodes: LevelArray, supp_lb: Int64Array) -> LowerBound:
        return _LossLowerBound(problem, nodes, supp_lb)


class DiscernibilityMetric:
    """Sum of squared kept class sizes plus N per suppressed row (an integer)."""

    metric: ClassVar[Metric] = Metric.DISCERNIBILITY
    tolerance: ClassVar[float] = 0.5

    def key(self, *, loss_key: int, discernibility: int) -> int:
        return discernibility

    def log_key(self, key: int) -> float:
        return float(key)

    def lower_bound(self, problem: Figures, nodes: LevelArray, supp_lb: Int64Array) -> LowerBound:
        return _DiscernibilityLowerBound(problem, nodes, supp_lb)


#: THE table of metrics.
METRICS: Mapping[Metric, MetricRules] = {
    Metric.LOSS: LossMetric(),
    Metric.DISCERNIBILITY: DiscernibilityMetric(),
}
