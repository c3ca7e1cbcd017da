"""Records into people: constrained average-link clustering over scored pairs.

Plain connected components over the pairs above the threshold chain unrelated people
together: A~B and B~C put A and C in one cluster even when A and C clearly differ. Here:

1. Records holding the same NHS linkage token are merged first (the hard rule: same token,
   same person).
2. The pairs at or above the threshold are taken strongest first (ties: lower record
   indices first, so the result depends only on the input order).
3. A pair joins its two clusters only when (a) they do not hold two different NHS tokens
   (the other hard rule: a cluster never holds two) and (b) the merge is *supported*: the
   mean match probability over **every** cross pair of the two clusters, scored afresh
   from the encodings, is at least the threshold (average linkage). A chain A~B~C with A and
   C unrelated fails (b) when C meets {A, B}.
4. Merges whose clusters would need more than ``max_cross`` cross pairs scored are refused
   (and counted): a person rarely has hundreds of records, a chain of strangers may.

Cluster ids are 0, 1, 2... in the order of each cluster's first record.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["MAX_CROSS", "Clustering", "cluster"]

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

#: Most cross pairs scored to check one merge.
MAX_CROSS = 250_000


@dataclass(frozen=True)
class Clustering:
    """Cluster id per record (0-based, by first record) and what the refinement refused."""

    labels: I64
    merges: int
    refused_nhs: int  # merges refused: two different NHS tokens
    refused_support: int  # merges refused: mean cross-pair probability below the threshold
    refused_large: int  # merges refused: more than max_cross cross pairs

    @property
    def n_clusters(self) -> int:
        return int(self.labels.max()) + 1 if len(self.labels) else 0


def cluster(
    n: int,
    nhs: I64,
    left: I64,
    right: I64,
    probability: F64,
    *,
    threshold: float,
    score: Callable[[I64, I64], F64],
    max_cross: int = MAX_CROSS,
) -> Clustering:
    """Cluster ``n`` records given scored pairs (see the module docstring).

    ``score(left, right)`` gives the match probability of any pairs (1 for the same NHS
    token, 0 for different ones); ``probability`` is that of the given pairs.
    """
    parent = list(range(n))
    members: dict[int, list[int]] = {}
    token: dict[int, int] = {}

    def find(x: int) -> int:
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:
            parent[x], x = root, parent[x]
        return root

    def union(a: int, b: int) -> None:
        ma = members.get(a, [a])
        mb = members.get(b, [b])
        if len(ma) < len(mb) or (len(ma) == len(mb) and b < a):
            a, b, ma, mb = b, a, mb, ma
        parent[b] = a
        members[a] = ma + mb
        members.pop(b, None)
        tb = token.pop(b, -1)
        if tb >= 0:
            token[a] = tb

    # 1. same NHS token, same person
    has = np.flatnonzero(nhs >= 0)
    for i in has.tolist():
        token[i] = int(nhs[i])
    if len(has):
        order = has[np.argsort(nhs[has], kind="stable")]
        codes = nhs[order]
        for k in np.flatnonzero(codes[1:] == codes[:-1]).tolist():
            a, b = find(int(order[k])), find(int(order[k + 1]))
            if a != b:
                union(a, b)

    # 2.-4. strongest pairs first, each merge checked
    keep = np.flatnonzero(probability >= threshold)
    order = keep[np.lexsort((right[keep], left[keep], -probability[keep]))]
    merges = refused_nhs = refused_support = refused_large = 0
    for li, ri in zip(left[order].tolist(), right[order].tolist(), strict=True):
        a, b = find(li), find(ri)
        if a == b:
            continue
        ta, tb = token.get(a, -1), token.get(b, -1)
        if ta >= 0 and tb >= 0 and ta != tb:
            refused_nhs += 1
            continue
        ma, mb = members.get(a, [a]), members.get(b, [b])
        cross = len(ma) * len(mb)
        if cross > 1:
            if cross > max_cross:
                refused_large += 1
                continue
            la = np.repeat(np.asarray(ma, dtype=np.int64), len(mb))
            lb = np.tile(np.asarray(mb, dtype=np.int64), len(ma))
            if float(score(la, lb).mean()) < threshold:
                refused_support += 1
                continue
        union(a, b)
        merges += 1

    roots = np.array(parent, dtype=np.int64)  # every record's root, by pointer jumping
    while True:
        up = roots[roots]
        if np.array_equal(up, roots):
            break
        roots = up
    _, first, inverse = np.unique(roots, return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    return Clustering(rank[inverse], merges, refused_nhs, refused_support, refused_large)
