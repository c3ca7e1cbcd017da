"""The lattice: node numbering, down-sets, and the climbing binary search."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from pseudogate.anonymity.lattice import Lattice, climb


def test_when_a_node_is_numbered_then_its_index_finds_it_again() -> None:
    lattice = Lattice.of((3, 1, 4))
    assert len(lattice) == 12
    for index in range(len(lattice)):
        assert lattice.index_of(lattice.levels_of(index)) == index
    assert lattice.tops == (2, 0, 3)
    assert lattice.below(lattice.index_of((1, 0, 2))).sum() == 2 * 1 * 3
    assert lattice.above(lattice.index_of((1, 0, 2))).sum() == 2 * 1 * 2


def test_when_levels_tie_on_sum_then_rank_is_lexicographic() -> None:
    lattice = Lattice.of((2, 2))
    order = sorted(range(len(lattice)), key=lambda i: lattice.rank()[i])
    assert [lattice.levels_of(i) for i in order] == [(0, 0), (0, 1), (1, 0), (1, 1)]


@settings(max_examples=60)
@given(st.lists(st.integers(1, 4), min_size=1, max_size=3).flatmap(
    lambda heights: st.tuples(
        st.just(tuple(heights)),
        st.lists(st.tuples(*(st.integers(0, h - 1) for h in heights)), min_size=1, max_size=4),
    )))
def test_when_climbing_a_down_closed_property_then_the_result_is_maximal(case: tuple) -> None:
    heights, generators = case
    tops = tuple(h - 1 for h in heights)

    def holds(levels: tuple[int, ...]) -> bool:  # the down-set of the generators
        return any(all(a <= b for a, b in zip(levels, g, strict=True)) for g in generators)

    start = generators[0]
    top = climb(start, tops, holds)
    assert holds(top) and all(a >= b for a, b in zip(top, start, strict=True))
    for pos in range(len(heights)):
        if top[pos] < tops[pos]:
            raised = list(top)
            raised[pos] += 1
            assert not holds(tuple(raised))
    # Every node the climb could reach is in the down-set it proves.
    assert all(holds(v) for v in itertools.product(*(range(t + 1) for t in top)))
