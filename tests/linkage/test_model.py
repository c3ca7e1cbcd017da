"""The Fellegi-Sunter model: u from sampled pairs, m by EM, weights and explanations."""

from __future__ import annotations

import json

import numpy as np
import numpy.typing as npt

from pseudogate.linkage.comparisons import BLOOM_LABELS, DATE_LABELS, Comparison
from pseudogate.linkage.model import all_pairs_prior, em_fit, estimate_u

COMPS = (Comparison("given_name", "bloom", BLOOM_LABELS),
         Comparison("family_name", "bloom", BLOOM_LABELS),
         Comparison("date_of_birth", "date", DATE_LABELS))
M = ((0.0, 0.80, 0.10, 0.06, 0.04), (0.0, 0.85, 0.07, 0.05, 0.03), (0.0, 0.90, 0.03, 0.05, 0.02))
U = ((0.0, 0.01, 0.02, 0.05, 0.92), (0.0, 0.005, 0.01, 0.03, 0.955),
     (0.0, 0.001, 0.0005, 0.02, 0.9785))


def _draw(rng: np.random.Generator, probs: tuple[tuple[float, ...], ...], n: int,
          null_share: float = 0.05) -> npt.NDArray[np.int8]:
    cols = []
    for p in probs:
        lv = rng.choice(len(p), size=n, p=p).astype(np.int8)
        lv[rng.random(n) < null_share] = 0
        cols.append(lv)
    return np.stack(cols, axis=1)


def test_when_em_runs_on_simulated_pairs_then_it_recovers_m_and_the_prior() -> None:
    rng = np.random.default_rng(7)
    matches, non = 4_000, 36_000
    levels = np.concatenate([_draw(rng, M, matches), _draw(rng, U, non)])
    u = estimate_u(COMPS, _draw(rng, U, 400_000))
    model = em_fit(COMPS, levels, u)
    assert abs(model.prior - matches / (matches + non)) < 0.01
    for got, want in zip(model.m, M, strict=True):
        assert np.allclose(got[1:], want[1:], atol=0.02), (got, want)
    for got, want in zip(model.u, U, strict=True):
        assert np.allclose(got[1:], want[1:], atol=0.005)


def test_when_a_comparison_is_fixed_then_em_leaves_its_m_alone() -> None:
    rng = np.random.default_rng(1)
    levels = np.concatenate([_draw(rng, M, 2_000), _draw(rng, U, 18_000)])
    u = estimate_u(COMPS, _draw(rng, U, 100_000))
    free = em_fit(COMPS, levels, u)
    fixed = em_fit(COMPS, levels, u, fixed={2})
    assert fixed.m[2] != free.m[2]
    assert np.allclose(fixed.m[0][1:], M[0][1:], atol=0.03)


def test_when_levels_agree_then_the_weight_is_the_sum_of_log_bayes_factors() -> None:
    rng = np.random.default_rng(3)
    levels = np.concatenate([_draw(rng, M, 2_000), _draw(rng, U, 18_000)])
    model = em_fit(COMPS, levels, estimate_u(COMPS, _draw(rng, U, 100_000)))
    weights = model.level_weights()
    pair = np.array([[1, 0, 4]], dtype=np.int8)
    assert model.weights(pair)[0] == weights[0][1] + 0.0 + weights[2][4]
    explained = model.explain([1, 0, 4])
    assert [(c.field, c.level) for c in explained] == [
        ("given_name", "dice>=0.95"), ("family_name", "null"), ("date_of_birth", "else")]
    assert sum(c.weight for c in explained) == model.weights(pair)[0]
    doc = json.loads(model.to_json())
    assert [c["field"] for c in doc["comparisons"]] == ["given_name", "family_name",
                                                        "date_of_birth"]


def test_when_the_prior_is_fitted_over_all_pairs_then_it_counts_the_likely_matches() -> None:
    # 100 pairs that are certainly matches among 1,000,000 pairs, the rest unlikely
    weights = np.concatenate([np.full(100, 40.0), np.full(10_000, -10.0)])
    lam = all_pairs_prior(weights, 1_000_000)
    assert abs(lam - 100 / 1_000_000) < 1e-5
