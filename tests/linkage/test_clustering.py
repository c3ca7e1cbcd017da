"""Clustering: NHS hard rules, no chaining, deterministic ids."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from hypothesis import given, settings
from hypothesis import strategies as st

from pseudogate.linkage.clustering import cluster


def _run(nhs: list[int], probs: dict[tuple[int, int], float], threshold: float = 0.5
         ) -> npt.NDArray[np.int64]:
    n = len(nhs)
    codes = np.array(nhs, dtype=np.int64)
    full = np.zeros((n, n))
    for (a, b), p in probs.items():
        full[a, b] = full[b, a] = p
    same = (codes[:, None] == codes[None, :]) & (codes[:, None] >= 0)
    diff = (codes[:, None] != codes[None, :]) & (codes[:, None] >= 0) & (codes[None, :] >= 0)
    full[same] = 1.0
    full[diff] = 0.0
    pairs = sorted(probs)
    left = np.array([a for a, _ in pairs], dtype=np.int64)
    right = np.array([b for _, b in pairs], dtype=np.int64)
    return cluster(n, codes, left, right, full[left, right], threshold=threshold,
                   score=lambda a, b: full[a, b]).labels


def test_when_a_chain_links_two_unrelated_records_through_a_third_then_not_all_three_merge() -> None:
    # A~B and B~C are strong, A and C clearly differ
    labels = _run([-1, -1, -1], {(0, 1): 0.99, (1, 2): 0.98, (0, 2): 0.0001})
    assert len(set(labels.tolist())) >= 2
    assert labels[0] == labels[1]  # the strongest pair is kept


def test_when_three_records_all_agree_then_they_are_one_cluster() -> None:
    labels = _run([-1, -1, -1], {(0, 1): 0.99, (1, 2): 0.98, (0, 2): 0.9})
    assert labels.tolist() == [0, 0, 0]


def test_when_a_long_chain_of_strangers_is_scored_then_it_does_not_collapse() -> None:
    n = 20
    probs = {(i, i + 1): 0.99 for i in range(n - 1)}
    probs |= {(i, j): 0.0 for i in range(n) for j in range(i + 2, n)}
    labels = _run([-1] * n, probs)
    assert np.bincount(labels).max() <= 2


def test_when_two_records_have_different_nhs_tokens_then_a_strong_pair_does_not_merge_them() -> None:
    labels = _run([3, 4], {(0, 1): 0.999999})
    assert labels.tolist() == [0, 1]


def test_when_records_share_an_nhs_token_then_they_merge_without_any_pair() -> None:
    labels = _run([5, -1, 5], {})
    assert labels.tolist() == [0, 1, 0]


def test_when_clusters_are_numbered_then_ids_follow_the_first_record() -> None:
    labels = _run([-1, -1, -1, -1], {(1, 3): 0.99, (0, 2): 0.99})
    assert labels.tolist() == [0, 1, 0, 1]


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_when_any_records_are_clustered_then_nhs_rules_hold(data: st.DataObject) -> None:
    n = data.draw(st.integers(1, 12))
    nhs = data.draw(st.lists(st.integers(-1, 3), min_size=n, max_size=n))
    pairs = [(a, b) for a in range(n) for b in range(a + 1, n)]
    chosen = data.draw(st.lists(st.sampled_from(pairs), unique=True) if pairs else st.just([]))
    probs = {p: data.draw(st.floats(0.0, 1.0)) for p in chosen}
    labels = _run(nhs, probs)
    for c in set(labels.tolist()):
        tokens = {nhs[i] for i in range(n) if labels[i] == c and nhs[i] >= 0}
        assert len(tokens) <= 1  # never two different NHS tokens in one person
    for i in range(n):
        for j in range(n):
            if nhs[i] >= 0 and nhs[i] == nhs[j]:
                assert labels[i] == labels[j]  # the same token is always one person
    first_seen = [labels.tolist().index(c) for c in range(labels.max() + 1)]
    assert first_seen == sorted(first_seen)  # ids in order of first record
    again = _run(nhs, probs)
    assert again.tolist() == labels.tolist()
