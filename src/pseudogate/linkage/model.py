"""A Fellegi-Sunter model whose m and u probabilities are estimated from the data.

As in Splink: ``u`` (the chance of each level among *non*-matching pairs) comes from a random
sample of record pairs, which are almost all non-matches; ``m`` (the chance among matching
pairs) and the share of matches among the candidate pairs (``prior``) come from
expectation-maximisation over the candidate pairs with ``u`` held fixed. EM runs on the
distinct patterns of levels and their counts, so it costs nothing next to comparing pairs.

A pair's match weight is the sum over fields of ``log2(m / u)`` of its level (null: 0), plus
the prior's log-odds when turned into a match probability. ``explain`` gives the per-field
contributions of one pair: field, level label and weight, never a value.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from pseudogate.linkage.comparisons import Comparison

__all__ = [
    "Contribution", "MatchModel", "all_pairs_prior", "all_pairs_prior_binned", "average_m",
    "em_fit", "estimate_u", "initial_m",
]

I8 = npt.NDArray[np.int8]
F64 = npt.NDArray[np.float64]

#: Smallest probability a level may have (a level never seen must not give infinite weight).
FLOOR = 1e-6


@dataclass(frozen=True)
class Contribution:
    """What one field contributed to a pair's weight."""

    field: str
    level: str  # "null" or the level's label
    weight: float


@dataclass(frozen=True)
class MatchModel:
    """m and u per comparison and level (index 0 = null, unused), and the candidate prior."""

    comparisons: tuple[Comparison, ...]
    m: tuple[tuple[float, ...], ...]
    u: tuple[tuple[float, ...], ...]
    prior: float
    iterations: int = 0

    def level_weights(self) -> list[F64]:
        """log2(m/u) per comparison, indexed by level (null = 0)."""
        out = []
        for m, u in zip(self.m, self.u, strict=True):
            w = np.zeros(len(m), dtype=np.float64)
            w[1:] = np.log2(np.maximum(m[1:], FLOOR)) - np.log2(np.maximum(u[1:], FLOOR))
            out.append(w)
        return out

    def weights(self, levels: I8) -> F64:
        """Match weight (sum of log2 Bayes factors) of each pair's levels."""
        total = np.zeros(levels.shape[0], dtype=np.float64)
        for c, w in enumerate(self.level_weights()):
            total += w[levels[:, c]]
        return total

    @property
    def prior_weight(self) -> float:
        p = min(max(self.prior, 1e-12), 1 - 1e-12)
        return math.log2(p / (1 - p))

    def probabilities(self, weights: F64) -> F64:
        """Match probability of each weight among the candidate pairs."""
        out: F64 = 1.0 / (1.0 + np.exp2(-(weights + self.prior_weight)))
        return out

    def weight_of(self, probability: float) -> float:
        """The match weight whose probability is ``probability``."""
        p = min(max(probability, 1e-15), 1 - 1e-15)
        return math.log2(p / (1 - p)) - self.prior_weight

    def explain(self, levels: Sequence[int]) -> list[Contribution]:
        """Per-field contributions of one pair's levels (labels and weights only)."""
        out = []
        for comp, w, lv in zip(self.comparisons, self.level_weights(), levels, strict=True):
            label = "null" if lv == 0 else comp.labels[lv - 1]
            out.append(Contribution(comp.field, label, float(w[lv])))
        return out

    def to_json(self) -> str:
        """The model as reviewable JSON (fields, level labels, m, u, weights, prior)."""
        return json.dumps({
            "prior": self.prior,
            "em_iterations": self.iterations,
            "comparisons": [
                {
                    "field": c.field,
                    "kind": c.kind,
                    "levels": [
                        {"label": label, "m": m[i], "u": u[i], "weight": float(w[i])}
                        for i, label in enumerate(c.labels, 1)
                    ],
                }
                for c, m, u, w in zip(self.comparisons, self.m, self.u, self.level_weights(),
                                      strict=True)
            ],
        }, indent=2)


def _level_shares(levels: I8, n_levels: int, weights: F64 | None = None) -> tuple[float, ...]:
    """Share of each non-null level (index 0 kept at 0), floored and renormalised."""
    counts = np.bincount(levels, weights=weights, minlength=n_levels).astype(np.float64)
    counts[0] = 0.0
    total = counts.sum()
    if total <= 0:
        shares = np.full(n_levels, 1.0 / max(n_levels - 1, 1))
    else:
        shares = counts / total
    shares = np.maximum(shares, FLOOR)
    shares[0] = 0.0
    shares /= shares.sum()
    return tuple(float(x) for x in shares)


def estimate_u(comparisons: Sequence[Comparison], levels: I8) -> tuple[tuple[float, ...], ...]:
    """u per comparison from the levels of randomly sampled pairs."""
    return tuple(
        _level_shares(levels[:, c], comp.n_levels) for c, comp in enumerate(comparisons)
    )


def initial_m(comparisons: Sequence[Comparison]) -> tuple[tuple[float, ...], ...]:
    """A starting point for EM: most matches agree exactly, few disagree entirely."""
    out = []
    for comp in comparisons:
        k = comp.n_levels - 1
        raw = [0.0] + [0.9 if i == 0 else 0.1 / (2**i) for i in range(k)]
        total = sum(raw)
        out.append(tuple(x / total for x in raw))
    return tuple(out)


def em_fit(
    comparisons: Sequence[Comparison],
    levels: I8,
    u: tuple[tuple[float, ...], ...],
    *,
    prior: float = 0.1,
    fixed: Collection[int] = (),
    max_iterations: int = 100,
    tolerance: float = 1e-6,
    counts: npt.NDArray[np.int64] | None = None,
) -> MatchModel:
    """Estimate m and the prior by EM over pairs' levels, u held fixed.

    ``counts``, when given, is the number of pairs with each row of ``levels`` (the rows are
    then level patterns, as counted by ``pairs.scan_patterns``); the fit is the same as over
    the pairs themselves.

    Comparisons whose index is in ``fixed`` take no part (their levels are treated as null
    and their m is returned as initialised): Splink's rule for the fields of the blocking
    rule that chose the pairs, whose agreement says nothing about matching within them.
    """
    comps = tuple(comparisons)
    if levels.shape[0] == 0 or (counts is not None and int(np.sum(counts)) == 0):
        return MatchModel(comps, initial_m(comps), u, prior, 0)
    levels = levels.copy()
    for c in fixed:
        levels[:, c] = 0
    counts_f: F64
    if counts is None:
        patterns, found = np.unique(levels, axis=0, return_counts=True)
        counts_f = found.astype(np.float64)
    else:
        patterns, inverse = np.unique(levels, axis=0, return_inverse=True)
        counts_f = np.bincount(inverse.reshape(-1), weights=np.asarray(counts, np.float64),
                               minlength=len(patterns)).astype(np.float64)
    m = initial_m(comps)
    it = 0
    for it in range(1, max_iterations + 1):
        model = MatchModel(comps, m, u, prior, it)
        post = model.probabilities(model.weights(patterns))
        wm = counts_f * post
        new_prior = float(wm.sum() / counts_f.sum())
        new_m = tuple(
            m[c] if c in fixed
            else _level_shares(patterns[:, c].astype(np.int64), comp.n_levels, wm)
            for c, comp in enumerate(comps)
        )
        delta = max(
            abs(new_prior - prior),
            max((abs(a - b) for ms, ns in zip(m, new_m, strict=True)
                 for a, b in zip(ms, ns, strict=True)), default=0.0),
        )
        m, prior = new_m, min(max(new_prior, 1e-9), 1 - 1e-9)
        if delta < tolerance:
            break
    return MatchModel(comps, m, u, prior, it)


def average_m(comparisons: Sequence[Comparison], fits: Sequence[tuple[MatchModel, Collection[int]]]
              ) -> tuple[tuple[float, ...], ...]:
    """m per comparison averaged over the EM sessions that estimated it (else the initial)."""
    start = initial_m(comparisons)
    out = []
    for c in range(len(comparisons)):
        got = [model.m[c] for model, fixed in fits if c not in fixed]
        out.append(tuple(float(x) for x in np.mean(np.asarray(got), axis=0)) if got else start[c])
    return tuple(out)


def all_pairs_prior(weights: F64, total_pairs: int, *, iterations: int = 200) -> float:
    """The share of matches among all ``total_pairs`` pairs, by EM on the prior alone.

    ``weights`` are those of the candidate pairs; every other pair shares no blocking key
    and is counted as a non-match (posterior 0).
    """
    finite = weights[np.isfinite(weights)]
    sure = float((weights == np.inf).sum())
    lam = max(1.0 / max(total_pairs, 1), 1e-12)
    for _ in range(iterations):
        logit = math.log2(lam / (1 - lam))
        expected = sure + float((1.0 / (1.0 + np.exp2(-(finite + logit)))).sum())
        new = min(max(expected / max(total_pairs, 1), 1e-15), 0.5)
        if abs(new - lam) <= 1e-9 * lam:
            return new
        lam = new
    return lam


def all_pairs_prior_binned(centres: F64, counts: npt.NDArray[np.int64], sure: int,
                           total_pairs: int, *, iterations: int = 200) -> float:
    """:func:`all_pairs_prior` from the candidate pairs' finite weights counted in fine bins
    (``centres``: the bins' centres; ``sure``: pairs of weight +inf)."""
    c = np.asarray(counts, dtype=np.float64)
    lam = max(1.0 / max(total_pairs, 1), 1e-12)
    for _ in range(iterations):
        logit = math.log2(lam / (1 - lam))
        expected = float(sure) + float((c / (1.0 + np.exp2(-(centres + logit)))).sum())
        new = min(max(expected / max(total_pairs, 1), 1e-15), 0.5)
        if abs(new - lam) <= 1e-9 * lam:
            return new
        lam = new
    return lam
