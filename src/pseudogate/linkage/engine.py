"""``link()``: candidate pairs, comparison levels, an estimated model, scores, clusters."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from pseudogate.core.errors import InvalidInput
from pseudogate.linkage.clustering import MAX_CROSS, Clustering, cluster
from pseudogate.linkage.comparisons import comparisons, levels, popcounts
from pseudogate.linkage.model import (
    FLOOR,
    Contribution,
    MatchModel,
    all_pairs_prior_binned,
    average_m,
    em_fit,
    estimate_u,
)
from pseudogate.linkage.pairs import (
    MAX_BLOCK,
    SPLIT_BLOCK,
    Scan,
    Weights,
    plan,
    scan_patterns,
    scan_select,
    scan_weights,
)
from pseudogate.linkage.records import EncodedRecords

__all__ = ["DEFAULT_THRESHOLD", "LinkResult", "Scorer", "fit_model", "link"]

I8 = npt.NDArray[np.int8]
I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

#: Default match threshold: a pair's match probability among the candidate pairs
#: (docs/linkage.md, "Matching and clustering", explains the choice).
DEFAULT_THRESHOLD = 0.5
#: Random pairs sampled to estimate u.
U_SAMPLE = 1_000_000
#: Fewest candidate pairs an EM session (one blocking key) learns from.
MIN_SESSION_PAIRS = 50
#: Pairs compared per chunk (bounds the memory of one comparison step).
CHUNK_PAIRS = 500_000
#: Bits below the threshold's weight under a first guess of the prior (from the level
#: patterns, without term frequencies) from which pairs are kept while their weights are
#: counted; if the fitted prior needs lower weights, the pairs are walked once more.
KEEP_MARGIN = 8.0


class Scorer:
    """Scores any pairs of one table under one model, with the NHS hard rules applied."""

    def __init__(self, table: EncodedRecords, model: MatchModel, *,
                 term_frequencies: bool = True,
                 counts: dict[str, npt.NDArray[np.int32]] | None = None) -> None:
        self.table = table
        self.model = model
        self._counts = counts if counts is not None else {
            k: popcounts(f.bits) for k, f in table.blooms.items()}
        self._tf = _term_frequencies(table) if term_frequencies else {}

    def with_model(self, model: MatchModel) -> Scorer:
        """The same table (popcounts and term frequencies reused) under another model."""
        out = Scorer.__new__(Scorer)
        out.table, out.model, out._counts, out._tf = self.table, model, self._counts, self._tf
        return out

    def pair_weights(self, s: Scan) -> Weights:
        """What the pair kernels need to weigh pairs exactly as :meth:`weights` does."""
        n, names = len(self.table), list(self.table.blooms)
        codes = np.full((n, len(names)), -1, dtype=np.int64)
        adjust = np.zeros((n, len(names)), dtype=np.float64)
        on = np.zeros(len(names), dtype=np.uint8)
        for c, name in enumerate(names):
            if name not in self._tf or not self.model.u:
                continue
            tf_codes, tf = self._tf[name]
            u1 = max(self.model.u[c][1], FLOOR)
            codes[:, c] = tf_codes
            adjust[:, c] = np.log2(u1) - np.log2(tf)
            on[c] = 1
        return Weights(self.model.weights(s.all_levels()), codes, adjust, on,
                       np.ascontiguousarray(self.table.nhs, dtype=np.int64))

    def levels(self, left: I64, right: I64) -> I8:
        return levels(self.table, left, right, self._counts)

    def weights(self, left: I64, right: I64, lv: I8 | None = None) -> F64:
        """Match weights; +inf for the same NHS token, -inf for two different ones."""
        if lv is None:
            lv = self.levels(left, right)
        w = self.model.weights(lv)
        for c, name in enumerate(self.table.blooms):
            if name not in self._tf or not self.model.u:
                continue
            codes, tf = self._tf[name]
            same = (lv[:, c] == 1) & (codes[left] == codes[right])
            if same.any():
                # Splink's term-frequency adjustment of the exact level: a rare value agreeing
                # is stronger evidence than a common one (u of the level -> the value's share)
                u1 = max(self.model.u[c][1], FLOOR)
                w[same] += np.log2(u1) - np.log2(tf[left[same]])
        a, b = self.table.nhs[left], self.table.nhs[right]
        both = (a >= 0) & (b >= 0)
        w[both & (a == b)] = np.inf
        w[both & (a != b)] = -np.inf
        return w

    def probabilities(self, left: I64, right: I64) -> F64:
        return self.model.probabilities(self.weights(left, right))

    def explain(self, left: int, right: int) -> list[Contribution]:
        """What each field contributed to the weight of one pair (no values)."""
        a, b = np.array([left], dtype=np.int64), np.array([right], dtype=np.int64)
        lv = self.levels(a, b)
        out = self.model.explain([int(x) for x in lv[0]])
        total = float(self.weights(a, b, lv)[0])
        if math.isinf(total):
            out.append(Contribution("nhs_number", "same" if total > 0 else "different", total))
        elif abs(rest := total - sum(c.weight for c in out)) > 1e-9:
            out.append(Contribution("term frequency", "exact name agreement", rest))
        return out


def _distinct_rows(bits: npt.NDArray[np.uint8]) -> tuple[I64, I64]:
    """A code per distinct row of a bit matrix (equal rows, equal codes) and each code's count.

    Rows are grouped by a 64-bit mix of their bytes (fast to sort), and the grouping is
    checked row by row against each group's first row; should two different rows ever share
    a mix, the rows themselves are sorted instead. Codes are compared for equality only.
    """
    n, width = bits.shape
    padded = np.zeros((n, (width + 7) // 8 * 8), dtype=np.uint8)
    padded[:, :width] = bits
    words = padded.view(np.uint64)
    mix = np.zeros(n, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for i in range(words.shape[1]):
            x = words[:, i] ^ np.uint64(0x9E3779B97F4A7C15 * (i + 1) % (1 << 64))
            x = (x ^ (x >> np.uint64(31))) * np.uint64(0xBF58476D1CE4E5B9)
            mix = (mix ^ x ^ (x >> np.uint64(29))) * np.uint64(0x94D049BB133111EB)
    _, first, codes, counts = np.unique(mix, return_index=True, return_inverse=True,
                                        return_counts=True)
    if not np.array_equal(padded, padded[first[codes]]):  # a collision: exact grouping
        rows = np.ascontiguousarray(bits).view(np.dtype((np.void, width)))[:, 0]
        _, codes, counts = np.unique(rows, return_inverse=True, return_counts=True)
    return codes.reshape(-1).astype(np.int64), counts.astype(np.int64)


def _term_frequencies(table: EncodedRecords) -> dict[str, tuple[I64, F64]]:
    """Per Bloom field: a code per distinct filter (identical bits, identical value) and the
    share of present records holding it. Computed from the encodings alone."""
    out: dict[str, tuple[I64, F64]] = {}
    for name, f in table.blooms.items():
        if not f.present.any():
            continue
        codes, counts = _distinct_rows(f.bits)
        codes[~f.present] = -1
        share = counts[np.maximum(codes, 0)] / max(int(f.present.sum()), 1)
        out[name] = (codes, np.maximum(share, FLOOR).astype(np.float64))
    return out


@dataclass(frozen=True)
class LinkResult:
    """Clusters, the fitted model and the counts a data manager wants to see."""

    clustering: Clustering
    model: MatchModel
    threshold: float
    records: int
    pairs_compared: int
    pairs_above_threshold: int
    skipped_blocks: int
    skipped_block_pairs: int
    seconds: float

    @property
    def labels(self) -> I64:
        return self.clustering.labels


def _chunked_levels(scorer: Scorer, left: I64, right: I64,
                    progress: Callable[[int], None] | None) -> I8:
    out = np.empty((len(left), len(comparisons(scorer.table))), dtype=np.int8)
    for s in range(0, len(left), CHUNK_PAIRS):
        e = min(s + CHUNK_PAIRS, len(left))
        out[s:e] = scorer.levels(left[s:e], right[s:e])
        if progress is not None:
            progress(e - s)
    return out


def _random_pairs(n: int, size: int, seed: int) -> tuple[I64, I64]:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, n, size=size, dtype=np.int64)
    b = rng.integers(0, n - 1, size=size, dtype=np.int64)
    b[b >= a] += 1  # never a record with itself
    return a, b


def fit_model(table: EncodedRecords, left: I64, right: I64, cand_levels: I8,
              u: tuple[tuple[float, ...], ...]) -> MatchModel:
    """m by EM, one session per blocking key (as Splink trains per blocking rule).

    Session j learns from the candidate pairs that share key j, leaving out the fields key j
    is made of; each field's m is the mean over the sessions that estimated it. The prior of
    the returned model is a placeholder (see :func:`all_pairs_prior`).
    """
    comps = comparisons(table)
    names = [c.field for c in comps]
    fits: list[tuple[MatchModel, frozenset[int]]] = []
    for j, used in enumerate(table.blocking_fields):
        key = table.blocking[:, j]
        same = (key[left] == key[right]) & (key[left] != 0)
        if int(same.sum()) < MIN_SESSION_PAIRS:  # too few pairs to learn m from
            continue
        fixed = frozenset(i for i, f in enumerate(names) if f in used)
        fits.append((em_fit(comps, cand_levels[same], u, fixed=fixed), fixed))
    if not fits:  # no key: learn from every candidate pair
        fits.append((em_fit(comps, cand_levels, u), frozenset()))
    return MatchModel(comps, average_m(comps, fits), u, 0.5,
                      max(f.iterations for f, _ in fits))


def fit_model_counts(table: EncodedRecords, patterns: I8, hist: npt.NDArray[np.int64],
                     u: tuple[tuple[float, ...], ...]) -> MatchModel:
    """:func:`fit_model` from level-pattern counts (``pairs.scan_patterns``): row j of
    ``hist`` counts the candidate pairs sharing key j, the last row all candidate pairs."""
    comps = comparisons(table)
    names = [c.field for c in comps]
    fits: list[tuple[MatchModel, frozenset[int]]] = []
    for j, used in enumerate(table.blocking_fields):
        if int(hist[j].sum()) < MIN_SESSION_PAIRS:  # too few pairs to learn m from
            continue
        nz = np.flatnonzero(hist[j])
        fixed = frozenset(i for i, f in enumerate(names) if f in used)
        fits.append((em_fit(comps, patterns[nz], u, fixed=fixed, counts=hist[j][nz]), fixed))
    if not fits:  # no key: learn from every candidate pair
        nz = np.flatnonzero(hist[-1])
        fits.append((em_fit(comps, patterns[nz], u, counts=hist[-1][nz]), frozenset()))
    return MatchModel(comps, average_m(comps, fits), u, 0.5,
                      max(f.iterations for f, _ in fits))


def default_workers() -> int:
    """Threads that compare pairs: the cores, at most 4 (``PSEUDOGATE_LINK_WORKERS`` overrides)."""
    env = os.environ.get("PSEUDOGATE_LINK_WORKERS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    return max(1, min(os.cpu_count() or 1, 4))


def link(
    table: EncodedRecords,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    max_block: int = MAX_BLOCK,
    max_cross: int = MAX_CROSS,
    u_sample: int = U_SAMPLE,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
    split_block: int = SPLIT_BLOCK,
    workers: int | None = None,
) -> LinkResult:
    """Cluster the records of ``table`` into people (docs/linkage.md).

    ``threshold`` is a match probability in (0, 1). ``seed`` fixes the random pairs that
    estimate u, so a run is reproducible. ``progress`` is called with the number of pairs
    compared as the work advances. Blocks of one key larger than ``split_block`` are split
    by the other keys, blocks of two keys larger than ``max_block`` skipped
    (``linkage/pairs.py``). ``workers`` threads compare pairs (default: the cores, at most 4);
    the result does not depend on it.
    """
    if not 0.0 < threshold < 1.0:
        raise InvalidInput("the match threshold is a probability strictly between 0 and 1")
    start = time.monotonic()
    n = len(table)
    comps = comparisons(table)
    if n < 2:
        scorer = Scorer(table, MatchModel(comps, (), (), 0.5))
        model = MatchModel(comps, tuple(() for _ in comps), tuple(() for _ in comps), 0.5)
        return LinkResult(
            cluster(n, table.nhs, np.zeros(0, np.int64), np.zeros(0, np.int64),
                    np.zeros(0), threshold=threshold, score=scorer.probabilities),
            model, threshold, n, 0, 0, 0, 0, time.monotonic() - start,
        )
    workers = default_workers() if workers is None else max(1, workers)
    blocks = plan(table.blocking, split_block=split_block, max_block=max_block)
    walk = Scan(table, blocks)
    scorer = Scorer(table, MatchModel(comps, (), (), 0.5), counts=walk.counts)
    ua, ub = _random_pairs(n, min(u_sample, n * (n - 1) // 2 * 4), seed)
    u = estimate_u(comps, _chunked_levels(scorer, ua, ub, None))
    del ua, ub
    # 1. the candidate pairs' level patterns -> m by EM (the pairs are not kept)
    compared, hist = scan_patterns(walk, workers=workers, progress=progress)
    model = fit_model_counts(table, walk.all_levels(), hist, u)
    # 2. their weights (binned) -> the prior over all pairs; the pairs that may reach the
    #    threshold are kept on the way (from a first guess of the prior, with a margin)
    weights = scorer.with_model(model).pair_weights(walk)
    all_levels = walk.all_levels()
    guess = replace(model, prior=all_pairs_prior_binned(
        model.weights(all_levels), hist[-1], 0, n * (n - 1) // 2))
    keep_from = guess.weight_of(threshold) - KEEP_MARGIN
    centres, counts, sure, kept = scan_weights(walk, weights, keep_from=keep_from,
                                               workers=workers)
    model = replace(model, prior=all_pairs_prior_binned(centres, counts, sure,
                                                        n * (n - 1) // 2))
    scorer = scorer.with_model(model)
    # 3. the pairs at or above the threshold, for clustering (walked again only when the
    #    guess was too far off)
    cut = model.weight_of(threshold) - 1e-6
    if kept is not None and cut >= keep_from:
        left, right, w = kept
    else:
        left, right, w = scan_select(walk, weights, cut, workers=workers)
    del kept
    p = model.probabilities(w)
    keep = p >= threshold
    left, right, p = left[keep], right[keep], p[keep]
    clustering = cluster(
        n, table.nhs, left, right, p,
        threshold=threshold, score=scorer.probabilities, max_cross=max_cross,
    )
    return LinkResult(
        clustering, model, threshold, n, compared, len(left),
        blocks.split_blocks + blocks.skipped_blocks, blocks.split_pairs + blocks.skipped_pairs,
        time.monotonic() - start,
    )
