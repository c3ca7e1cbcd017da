"""The generalisation lattice: every transformation (one level per quasi-identifier).

A transformation is a vector of levels; ``Lattice.nodes`` holds them all, one row each, in
lexicographic order, so a node's index is its mixed-radix number. Monotone properties (an
unacceptable node makes its whole down-set unacceptable) prune with :meth:`Lattice.below`;
:func:`climb` finds a maximal node of a down-closed property by binary search per coordinate.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from pseudogate.anonymity.arrays import BoolArray, Int64Array, LevelArray

__all__ = ["Lattice", "climb"]


@dataclass(frozen=True)
class Lattice:
    """All level vectors of hierarchies of the given heights (levels 0 … height − 1)."""

    heights: tuple[int, ...]
    nodes: LevelArray  # (transformations, QIs), lexicographic order
    strides: tuple[int, ...]  # index of a node = sum(level * stride)

    @classmethod
    def of(cls, heights: tuple[int, ...]) -> Lattice:
        if heights:
            grids = np.indices(heights, dtype=np.int16)
            nodes = grids.reshape(len(heights), -1).T.copy()
        else:
            nodes = np.zeros((1, 0), dtype=np.int16)
        strides = [1] * len(heights)
        for qi in range(len(heights) - 2, -1, -1):
            strides[qi] = strides[qi + 1] * heights[qi + 1]
        return cls(heights, nodes, tuple(strides))

    def __len__(self) -> int:
        return len(self.nodes)

    @property
    def tops(self) -> tuple[int, ...]:
        """The most general level of each quasi-identifier."""
        return tuple(h - 1 for h in self.heights)

    def index_of(self, levels: Sequence[int]) -> int:
        return sum(int(level) * stride for level, stride in zip(levels, self.strides, strict=True))

    def levels_of(self, index: int) -> tuple[int, ...]:
        return tuple(int(v) for v in self.nodes[index])

    def rank(self) -> Int64Array:
        """Per node, its place in the tie-break order: lowest level sum, then lexicographic."""
        count = len(self.nodes)
        level_sum = self.nodes.sum(axis=1, dtype=np.int64)
        rank = np.empty(count, dtype=np.int64)
        rank[np.lexsort((np.arange(count), level_sum))] = np.arange(count)
        return rank

    def below(self, index: int) -> BoolArray:
        """Mask of the nodes at or below (finer than or equal to) node ``index``."""
        mask: BoolArray = np.all(self.nodes <= self.nodes[index], axis=1)
        return mask

    def above(self, index: int) -> BoolArray:
        """Mask of the nodes at or above (coarser than or equal to) node ``index``."""
        mask: BoolArray = np.all(self.nodes >= self.nodes[index], axis=1)
        return mask

    def below_on(self, qis: Sequence[int], levels: Sequence[int]) -> BoolArray:
        """Mask of the nodes at or below ``levels`` on the quasi-identifiers ``qis``."""
        mask: BoolArray = np.all(
            self.nodes[:, list(qis)] <= np.array(levels, dtype=self.nodes.dtype), axis=1)
        return mask


def climb(start: Sequence[int], tops: Sequence[int],
          holds: Callable[[tuple[int, ...]], bool]) -> tuple[int, ...]:
    """A maximal level vector above ``start`` where ``holds`` (true at ``start``) still holds.

    ``holds`` must be down-closed (true at a vector, true at every finer one), like "is
    unacceptable". Each coordinate in turn is raised to the highest level that keeps it true
    (binary search between its current level and its top), so the result is maximal: raising
    any one coordinate makes ``holds`` false.
    """
    current = [int(level) for level in start]
    for pos, top in enumerate(tops):
        lo, hi = current[pos], int(top)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            trial = list(current)
            trial[pos] = mid
            if holds(tuple(trial)):
                lo = mid
            else:
                hi = mid - 1
        current[pos] = lo
    return tuple(current)
