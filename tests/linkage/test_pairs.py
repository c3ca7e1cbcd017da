"""Candidate pairs at scale (linkage/pairs.py): split blocks, each pair once, C = numpy."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest

from pseudogate.linkage import pairs as P
from pseudogate.linkage.comparisons import comparisons, levels
from pseudogate.linkage.engine import Scorer, fit_model, fit_model_counts, link
from pseudogate.linkage.model import MatchModel, all_pairs_prior, all_pairs_prior_binned
from pseudogate.linkage.records import (
    BloomField,
    DateField,
    EncodedRecords,
    ExactField,
    TokenLevel,
)


def _tokens(rng: np.random.Generator, people: np.ndarray, slots: int, values: int
            ) -> np.ndarray:
    """Token codes a person mostly keeps (some slots lost or changed), 0 = absent."""
    n = len(people)
    codes = rng.integers(1, values, (people.max() + 1, slots))[people].astype(np.int32)
    codes[rng.random((n, slots)) < 0.2] = 0
    change = rng.random((n, slots)) < 0.1
    codes[change] = rng.integers(1, values, int(change.sum()))
    return np.ascontiguousarray(codes)


def _table(n: int = 400, seed: int = 3, tokens: bool = False) -> EncodedRecords:
    """Random records whose keys have small value spaces, so that some blocks are large
    (with ``tokens``, Bloom fields 0 and 2 carry token levels as the fbf mapping makes)."""
    rng = np.random.default_rng(seed)
    people = rng.integers(0, n // 2, n)  # about two records a person
    base = rng.integers(0, 256, (n // 2, 3, 32), dtype=np.uint8) & rng.integers(
        0, 256, (n // 2, 3, 32), dtype=np.uint8)
    bits = base[people].copy()
    noise = rng.random(bits.shape) < 0.02
    bits[noise] ^= np.uint8(1 << 3)
    present = rng.random((n, 3)) > 0.05
    day = rng.integers(1, 29, n // 2)[people].astype(np.int16)
    month = rng.integers(1, 13, n // 2)[people].astype(np.int16)
    year = rng.integers(1, 6, n // 2)[people].astype(np.int16)
    keys = np.stack([
        rng.integers(1, 4, n // 2)[people],  # three values: large blocks
        rng.integers(1, 6, n // 2)[people],
        rng.integers(1, 40, n // 2)[people],
        rng.integers(0, 300, n // 2)[people],  # 0 = no key
    ], axis=1).astype(np.uint64)
    keys[rng.random(keys.shape) < 0.1] = 0
    nhs = np.where(rng.random(n) < 0.1, people, -1).astype(np.int64)
    extra: dict[int, tuple[TokenLevel, ...]] = {0: (), 1: (), 2: ()}
    if tokens:  # f0: one level of 3 slots; f2: two levels of 1 slot (few values: chance hits)
        extra[0] = (TokenLevel("part", _tokens(rng, people, 3, 30)),)
        extra[2] = (TokenLevel("sector", _tokens(rng, people, 1, 8)),
                    TokenLevel("district", _tokens(rng, people, 1, 4)))
    return EncodedRecords(
        key_id="k", source=np.zeros(n, np.int32), row=np.arange(1, n + 1, dtype=np.int64),
        nhs=nhs,
        blooms={f"f{i}": BloomField(np.ascontiguousarray(bits[:, i, : 32 if i else 16]),
                                    present[:, i], extra[i]) for i in range(3)},
        dates={"date_of_birth": DateField(day, month, year)},
        exact={"sex": ExactField(rng.integers(-1, 2, n // 2)[people].astype(np.int64))},
        blocking=keys,
        blocking_fields=(frozenset({"f0"}), frozenset({"f1"}), frozenset({"date_of_birth"}),
                         frozenset({"f2"})),
    )


def _expected(keys: np.ndarray, split: int, cap: int) -> set[tuple[int, int]]:
    """Brute force of the rule in pairs.py's docstring."""
    n, k = keys.shape
    size1 = [Counter(keys[:, j].tolist()) for j in range(k)]
    big = np.array([[keys[r, j] != 0 and size1[j][int(keys[r, j])] > split for j in range(k)]
                    for r in range(n)])
    size2 = {}
    for i, j in itertools.combinations(range(k), 2):
        both = big[:, i] & big[:, j]
        size2[i, j] = Counter(zip(keys[both, i].tolist(), keys[both, j].tolist(), strict=True))
    out = set()
    for a, b in itertools.combinations(range(n), 2):
        share = [keys[a, j] != 0 and keys[a, j] == keys[b, j] for j in range(k)]
        if any(share[j] and not big[a, j] for j in range(k)):
            out.add((a, b))
            continue
        for i, j in itertools.combinations(range(k), 2):
            if share[i] and share[j] and big[a, i] and big[a, j] and \
                    size2[i, j][int(keys[a, i]), int(keys[a, j])] <= cap:
                out.add((a, b))
    return out


def _walked(s: P.Scan) -> list[tuple[int, int]]:
    got = []
    for k, b0, b1, _ in s.plan.chunks(limit=500):
        li, ri, _ = s._pairs_np(k, b0, b1)
        got += [(min(a, b), max(a, b)) for a, b in zip(li.tolist(), ri.tolist(), strict=True)]
    return got


@pytest.mark.parametrize(("split", "cap"), [(10**6, 10**6), (40, 1000), (40, 8), (5, 3)])
def test_when_blocks_are_split_then_the_pairs_follow_the_rule_each_once(split: int,
                                                                        cap: int) -> None:
    t = _table()
    s = P.Scan(t, P.plan(t.blocking, split_block=split, max_block=cap))
    got = _walked(s)
    assert len(got) == len(set(got))
    assert set(got) == _expected(t.blocking, split, cap)


def test_when_no_block_is_large_then_every_pair_sharing_a_key_is_a_candidate() -> None:
    t = _table()
    s = P.Scan(t, P.plan(t.blocking, split_block=10**6))
    keys = t.blocking
    want = {(a, b) for a, b in itertools.combinations(range(len(t)), 2)
            if any(keys[a, j] != 0 and keys[a, j] == keys[b, j] for j in range(keys.shape[1]))}
    assert set(_walked(s)) == want
    assert s.plan.split_blocks == s.plan.skipped_blocks == 0


def _weights(t: EncodedRecords, s: P.Scan) -> tuple[P.Weights, MatchModel]:
    comps = comparisons(t)
    u = tuple(tuple([0.0] + [1.0 / (c.n_levels - 1)] * (c.n_levels - 1)) for c in comps)
    _, hist = P.scan_patterns(s)
    model = fit_model_counts(t, s.all_levels(), hist, u)
    return Scorer(t, model).pair_weights(s), model


@pytest.mark.skipif(P.kernels is None, reason="the C kernel is not built")
@pytest.mark.parametrize(("split", "tokens", "seed"),
                         [(10**6, False, 3), (20, False, 3), (10**6, True, 3), (20, True, 5),
                          (20, True, 7)])
def test_when_the_c_kernel_walks_the_pairs_then_it_counts_what_numpy_counts(
        split: int, tokens: bool, seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    t = _table(seed=seed, tokens=tokens)
    if tokens:  # every token level is reached by some pair
        assert [c.n_levels for c in comparisons(t)][:3] == [6, 5, 7]
        walked = np.array(_walked(P.Scan(t, P.plan(t.blocking, split_block=split,
                                                     max_block=50))), dtype=np.int64)
        lv = levels(t, walked[:, 0], walked[:, 1])
        assert {4, 5} <= set(lv[:, 0].tolist()) and {4, 5, 6} <= set(lv[:, 2].tolist())
    s = P.Scan(t, P.plan(t.blocking, split_block=split, max_block=50))
    w, model = _weights(t, s)
    cut = model.weight_of(0.5)

    def walks() -> tuple:  # type: ignore[type-arg]
        both = P.scan_weights(s, w, keep_from=cut)
        assert both[3] is not None
        alone = P.scan_select(s, w, cut)
        for a, b in zip(both[3], alone, strict=True):  # kept on the way = selected alone
            assert np.array_equal(a, b)
        return P.scan_patterns(s), P.scan_weights(s, w), alone

    c_out = walks()
    monkeypatch.setattr(P, "kernels", None)
    np_out = walks()
    assert c_out[0][0] == np_out[0][0] and np.array_equal(c_out[0][1], np_out[0][1])
    for a, b in zip(c_out[1], np_out[1], strict=True):
        assert np.array_equal(a, b)
    order_c = np.lexsort((c_out[2][1], c_out[2][0]))
    order_n = np.lexsort((np_out[2][1], np_out[2][0]))
    for a, b in zip(c_out[2], np_out[2], strict=True):
        assert np.array_equal(np.asarray(a)[order_c], np.asarray(b)[order_n])


@pytest.mark.parametrize("tokens", [False, True])
def test_when_em_learns_from_pattern_counts_then_it_fits_what_it_fits_on_the_pairs(
        tokens: bool) -> None:
    t = _table(tokens=tokens)
    s = P.Scan(t, P.plan(t.blocking, split_block=10**6))
    comps = comparisons(t)
    u = tuple(tuple([0.0] + [1.0 / (c.n_levels - 1)] * (c.n_levels - 1)) for c in comps)
    pairs = np.array(_walked(s), dtype=np.int64)
    lv = levels(t, pairs[:, 0], pairs[:, 1])
    _, hist = P.scan_patterns(s)
    assert fit_model_counts(t, s.all_levels(), hist, u) == fit_model(
        t, pairs[:, 0], pairs[:, 1], lv, u)


def test_when_the_prior_is_fitted_from_binned_weights_then_it_is_within_a_hair() -> None:
    rng = np.random.default_rng(1)
    w = np.concatenate([rng.normal(-12, 4, 200_000), rng.normal(15, 3, 2_000), [np.inf] * 50])
    x = np.floor((w[np.isfinite(w)] - P.WEIGHT_LO) * P.WEIGHT_SCALE).astype(np.int64)
    bins, counts = np.unique(x, return_counts=True)
    centres = P.WEIGHT_LO + (bins + 0.5) / P.WEIGHT_SCALE
    exact = all_pairs_prior(w, 10**9)
    assert abs(all_pairs_prior_binned(centres, counts, 50, 10**9) / exact - 1) < 1e-3


@pytest.mark.parametrize("tokens", [False, True])
def test_when_link_runs_on_one_or_two_threads_then_the_clusters_are_the_same(
        tokens: bool) -> None:
    t = _table(tokens=tokens)
    a = link(t, split_block=20, workers=1)
    b = link(t, split_block=20, workers=2)
    assert np.array_equal(a.labels, b.labels)
    assert a.pairs_compared == b.pairs_compared
    assert a.skipped_blocks > 0


@pytest.mark.skipif(P.kernels is None, reason="the C kernel is not built")
def test_when_the_c_kernel_is_given_inconsistent_buffers_then_it_refuses() -> None:
    t = _table()
    s = P.Scan(t, P.plan(t.blocking, split_block=20))
    hist = np.zeros((s.n_keys + 1, s.n_patterns), dtype=np.int64)
    k = next(k for k, o in enumerate(s.plan.orders) if len(o))
    ctx = list(s._ctx(k))
    ctx[0] = ctx[0].copy()
    ctx[0][0] = len(t)  # a record index past the table
    with pytest.raises(ValueError, match="inconsistent"):
        P.kernels.scan(0, k, 0, 1, tuple(ctx), None, hist, 0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="pattern counts"):
        P.kernels.scan(0, k, 0, 1, s._ctx(k), None, hist[:, :10].copy(), 0.0, 0.0, 0.0)
