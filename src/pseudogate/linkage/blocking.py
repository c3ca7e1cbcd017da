"""Candidate pairs: records sharing at least one blocking key.

Each column of ``EncodedRecords.blocking`` is one kind of key (say year of birth + first
letter of the family name). Records with the same non-zero value in a column form a block;
every pair inside a block is a candidate. A block larger than ``max_block`` records (a very
common surname in one birth year, a shared care-home postcode) is *skipped for that kind of
key*: its pairs are still candidates when they share another key, and the count of skipped
blocks and the pairs they held is reported so that the loss is visible. Pairs are returned
once each, ``left < right``, sorted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["MAX_BLOCK", "Candidates", "candidate_pairs"]

I64 = npt.NDArray[np.int64]

#: Largest block whose pairs are generated (pairs per block: n(n-1)/2, ~500k at 1,000).
MAX_BLOCK = 1_000


@dataclass(frozen=True)
class Candidates:
    """Candidate pairs (record indices, ``left < right``) and what blocking left out."""

    left: I64
    right: I64
    skipped_blocks: int
    skipped_pairs: int  # pairs of skipped blocks (some may still be candidates via other keys)

    def __len__(self) -> int:
        return len(self.left)


def _block_pairs(keys: npt.NDArray[np.uint64], *, max_block: int) -> tuple[I64, int, int]:
    """Pair codes (left * n + right) of one key column, and the skipped blocks and pairs."""
    n = len(keys)
    idx = np.flatnonzero(keys != 0)
    if len(idx) < 2:
        return np.zeros(0, dtype=np.int64), 0, 0
    order = idx[np.argsort(keys[idx], kind="stable")]
    sk = keys[order]
    starts = np.flatnonzero(np.r_[True, sk[1:] != sk[:-1]])
    sizes = np.diff(np.r_[starts, len(sk)])
    big = sizes > max_block
    skipped_blocks = int(big.sum())
    skipped_pairs = int((sizes[big] * (sizes[big] - 1) // 2).sum())
    out: list[I64] = []
    for s in np.unique(sizes[(sizes >= 2) & ~big]):
        run_starts = starts[sizes == s]
        a, b = np.triu_indices(int(s), 1)
        li = order[run_starts[:, None] + a[None, :]].ravel().astype(np.int64)
        ri = order[run_starts[:, None] + b[None, :]].ravel().astype(np.int64)
        lo, hi = np.minimum(li, ri), np.maximum(li, ri)
        out.append(lo * n + hi)
    codes = np.concatenate(out) if out else np.zeros(0, dtype=np.int64)
    return codes, skipped_blocks, skipped_pairs


def candidate_pairs(blocking: npt.NDArray[np.uint64], *, max_block: int = MAX_BLOCK) -> Candidates:
    """Every pair of records sharing a key in some column (deduplicated, sorted)."""
    n = blocking.shape[0]
    parts: list[I64] = []
    skipped_blocks = skipped_pairs = 0
    for j in range(blocking.shape[1]):
        codes, sb, sp = _block_pairs(blocking[:, j], max_block=max_block)
        parts.append(np.unique(codes))
        skipped_blocks += sb
        skipped_pairs += sp
    codes = np.unique(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)
    return Candidates(codes // max(n, 1), codes % max(n, 1), skipped_blocks, skipped_pairs)
