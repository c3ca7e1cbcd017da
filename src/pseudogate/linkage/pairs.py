"""Candidate pairs at scale: blocks that stay small as the files grow, scanned without storing pairs.

A record's blocking keys (``EncodedRecords.blocking``, one column per kind of key) have fixed
value spaces (a year of birth, a Soundex code, a date), so the blocks of one key grow with
the number of records and the pairs inside them grow with its square. Here
(docs/linkage.md, "Blocking"):

1. A block of one key holding at most ``split_block`` records is compared whole.
2. A larger block is **split by every other key**: its pairs are compared when they also
   share that other key (where the other key's block is small too, the pair is already
   compared there). Concretely, for every two keys ``i < j``, the records whose blocks of
   both keys are larger than ``split_block`` form blocks of the two keys together; each of
   those holding at most ``max_block`` records is compared whole, a larger one is skipped
   (counted).
3. Each candidate pair is compared once: by the first kind of block (keys in column order,
   then the pairs of keys in order) that holds it and is compared whole.

With ``split_block`` above every block of a data set, this is exactly "every pair sharing a
key", as before; FEBRL 3 and 4 and the 5,000-record synthetic benchmark have no block above
64 records.

The pairs are never stored: :func:`scan` walks them in chunks (on several threads) and counts
their comparison-level patterns (mode ``"patterns"``), counts their match weights in fine
bins (``"weights"``), or returns those at or above a weight (``"select"``). The walk is done by
the optional C kernel (``_kernels.c``) or, without it or with ``PSEUDOGATE_PURE_PYTHON=1``,
by numpy with identical results.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
import numpy.typing as npt

from pseudogate.linkage.comparisons import DICE_LEVELS, comparisons, levels
from pseudogate.linkage.records import EncodedRecords

__all__ = ["MAX_BLOCK", "SPLIT_BLOCK", "WEIGHT_BINS", "Plan", "Weights", "kernels", "plan",
           "scan_patterns", "scan_select", "scan_weights"]

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
U32 = npt.NDArray[np.uint32]

#: Blocks of one key larger than this are split by the other keys.
SPLIT_BLOCK = 64
#: Blocks of two keys together larger than this are skipped (counted).
MAX_BLOCK = 1_000
#: Pairs (upper bound) per chunk of work.
CHUNK_PAIRS = 2_000_000
#: Weight histogram: bins of 1/512 bit from -128 to 128 (values outside go to the end bins).
WEIGHT_LO = -128.0
WEIGHT_SCALE = 512.0
WEIGHT_BINS = 1 << 17


def _load_kernels() -> ModuleType | None:
    if os.environ.get("PSEUDOGATE_PURE_PYTHON") == "1":
        return None
    try:
        from pseudogate.linkage import _kernels  # type: ignore[attr-defined]
    except ImportError:
        return None
    return _kernels  # type: ignore[no-any-return]


kernels: ModuleType | None = _load_kernels()


@dataclass(frozen=True)
class Plan:
    """The kinds of block, their blocks (records in ``orders[k]``, block ``b`` from
    ``starts[k][b]`` to ``starts[k][b + 1]``), and per record which kinds it may be
    compared under (bit k of ``usable``)."""

    kinds: tuple[tuple[int, ...], ...]
    req: U32  # per kind: the keys (bits) a pair must share
    usable: U32
    orders: tuple[I64, ...]
    starts: tuple[I64, ...]
    split_blocks: int  # blocks of one key split by the others
    split_pairs: int
    skipped_blocks: int  # blocks of two keys skipped (above max_block)
    skipped_pairs: int

    def chunks(self, limit: int = CHUNK_PAIRS) -> list[tuple[int, int, int, int]]:
        """(kind, first block, end block, pairs bound) pieces of about ``limit`` pairs."""
        out = []
        for k, st in enumerate(self.starts):
            sizes = np.diff(st)
            if not len(sizes):
                continue
            cum = np.cumsum(sizes * (sizes - 1) // 2)
            b0 = 0
            while b0 < len(sizes):
                base = int(cum[b0 - 1]) if b0 else 0
                b1 = int(np.searchsorted(cum, base + limit, side="right"))
                b1 = max(b1, b0 + 1)
                out.append((k, b0, b1, int(cum[b1 - 1]) - base))
                b0 = b1
        return out


_MIX = np.uint64(0x9E3779B97F4A7C15)


def _groups(cols: list[npt.NDArray[np.uint64]], elig: npt.NDArray[np.bool_]
            ) -> tuple[I64, I64]:
    """Records of ``elig`` sorted by their values in ``cols``, and the sizes of the blocks.

    Two keys are blocked on one 64-bit mix of both (a sort of one column, not two). Should two
    different pairs of values share a mix, their records form one block; the walk compares
    only pairs sharing every key of their kind, so that costs time, never a wrong candidate.
    """
    idx = np.flatnonzero(elig).astype(np.int64)
    value = cols[0][idx]
    with np.errstate(over="ignore"):
        for c in cols[1:]:
            value = (value ^ (value >> np.uint64(29))) * _MIX + c[idx]
    by = np.argsort(value, kind="stable")
    order, sv = idx[by], value[by]
    new = np.ones(len(order), dtype=bool)
    new[1:] = sv[1:] != sv[:-1]
    starts = np.flatnonzero(new).astype(np.int64)
    sizes = np.diff(np.r_[starts, len(order)]).astype(np.int64)
    return order, sizes


def plan(blocking: npt.NDArray[np.uint64], *, split_block: int = SPLIT_BLOCK,
         max_block: int = MAX_BLOCK) -> Plan:
    """The blocks to compare (see the module docstring)."""
    n, k_keys = blocking.shape
    if k_keys > 32:
        raise ValueError("at most 32 kinds of blocking key")
    kinds = [(j,) for j in range(k_keys)] + list(itertools.combinations(range(k_keys), 2))
    usable = np.zeros(n, dtype=np.uint32)
    big = np.zeros((n, k_keys), dtype=bool)
    orders: list[I64] = []
    starts_out: list[I64] = []
    split_blocks = split_pairs = skipped_blocks = skipped_pairs = 0
    for k, keys in enumerate(kinds):
        cols = [np.ascontiguousarray(blocking[:, j]) for j in keys]
        elig = np.logical_and.reduce([c != 0 for c in cols])
        if len(keys) == 2:
            elig &= big[:, keys[0]] & big[:, keys[1]]
        order, sizes = _groups(cols, elig)
        if len(keys) == 1:
            over = sizes > split_block
            big[order[np.repeat(over, sizes)], keys[0]] = True
            split_blocks += int(over.sum())
            split_pairs += int((sizes[over] * (sizes[over] - 1) // 2).sum())
        else:
            over = sizes > max_block
            skipped_blocks += int(over.sum())
            skipped_pairs += int((sizes[over] * (sizes[over] - 1) // 2).sum())
        ok = (sizes >= 2) & ~over
        keep = np.repeat(ok, sizes)
        usable[order[keep]] |= np.uint32(1 << k)
        orders.append(np.ascontiguousarray(order[keep]))
        starts_out.append(np.r_[0, np.cumsum(sizes[ok])].astype(np.int64))
    req = np.array([sum(1 << j for j in keys) for keys in kinds], dtype=np.uint32)
    return Plan(tuple(kinds), req, usable, tuple(orders), tuple(starts_out),
                split_blocks, split_pairs, skipped_blocks, skipped_pairs)


# -- the table as the kernels see it ----------------------------------------------------------


@dataclass(frozen=True)
class Weights:
    """What turns a level pattern into a pair's weight: the weight of each pattern code, the
    term-frequency adjustment of each record's exact agreement per Bloom field (``on``: the
    field is adjusted), and the NHS codes."""

    table: F64
    tf_codes: I64  # (n, F), -1 missing
    tf_adjust: F64  # (n, F)
    on: npt.NDArray[np.uint8]  # (F,)
    nhs: I64


class Scan:
    """A table and its plan, ready to be walked."""

    def __init__(self, table: EncodedRecords, p: Plan) -> None:
        self.table = table
        self.plan = p
        comps = comparisons(table)
        radix = [c.n_levels for c in comps]
        self.n_patterns = int(math.prod(radix))
        self.mult = np.array([math.prod(radix[c + 1:]) for c in range(len(radix))],
                             dtype=np.int64)
        n = len(table)
        blooms = list(table.blooms.values())
        widths = [(bf.bits.shape[1] + 7) // 8 for bf in blooms]
        self.fieldoff = np.r_[0, np.cumsum(widths)].astype(np.int32)
        words = np.zeros((n, int(self.fieldoff[-1]) * 8), dtype=np.uint8)
        for bf, off in zip(blooms, self.fieldoff[:-1].tolist(), strict=True):
            words[:, off * 8: off * 8 + bf.bits.shape[1]] = bf.bits
        self.words = words.view(np.uint64).reshape(n, -1)
        self.counts = {name: np.bitwise_count(self.words[:, a:b]).sum(axis=1, dtype=np.int32)
                       for name, a, b in zip(table.blooms, self.fieldoff[:-1].tolist(),
                                             self.fieldoff[1:].tolist(), strict=True)}
        self.pc = np.ascontiguousarray(np.stack(list(self.counts.values()), axis=1)
                                       if blooms else np.zeros((n, 0), np.int32))
        self.present = np.ascontiguousarray(
            np.stack([bf.present for bf in blooms], axis=1).astype(np.uint8)
            if blooms else np.zeros((n, 0), np.uint8))
        self.dates = np.ascontiguousarray(
            np.stack([np.stack([d.day, d.month, d.year], axis=1) for d in table.dates.values()],
                     axis=1).astype(np.int16)
            if table.dates else np.zeros((n, 0, 3), np.int16))
        self.exact = np.ascontiguousarray(
            np.stack([e.codes for e in table.exact.values()], axis=1).astype(np.int32)
            if table.exact else np.zeros((n, 0), np.int32))
        self.keys = np.ascontiguousarray(table.blocking, dtype=np.uint64)
        self.dice_t = np.array([t - 1e-12 for t in DICE_LEVELS], dtype=np.float64)
        # token levels: codes side by side (n, T); field f has levels xoff[f] .. xoff[f+1]-1,
        # level x the columns lvoff[x] .. lvoff[x+1]-1
        extras = [x for bf in blooms for x in bf.extra]
        self.xoff = np.r_[0, np.cumsum([len(bf.extra) for bf in blooms])].astype(np.int32)
        self.lvoff = np.r_[0, np.cumsum([x.codes.shape[1] for x in extras])].astype(np.int32)
        self.tok = np.ascontiguousarray(
            np.concatenate([x.codes for x in extras], axis=1).astype(np.int32)
            if extras else np.zeros((n, 0), np.int32))
        self.n_keys = self.keys.shape[1]

    def all_levels(self) -> npt.NDArray[np.int8]:
        """The levels of every pattern code, (codes, comparisons)."""
        codes = np.arange(self.n_patterns, dtype=np.int64)
        radix = [c.n_levels for c in comparisons(self.table)]
        return np.stack([(codes // m) % r for m, r in zip(self.mult.tolist(), radix,
                                                          strict=True)],
                        axis=1).astype(np.int8) if radix else np.zeros((1, 0), np.int8)

    def _ctx(self, k: int) -> tuple[Any, ...]:
        return (self.plan.orders[k], self.plan.starts[k], self.plan.req, self.plan.usable,
                self.keys, self.words, self.fieldoff, self.pc, self.present, self.dates,
                self.exact, self.mult.astype(np.int32), self.dice_t, self.tok, self.xoff,
                self.lvoff, self.n_keys, self.words.shape[1], self.pc.shape[1],
                self.dates.shape[1], self.exact.shape[1], self.tok.shape[1])

    # -- the numpy walk (reference and fallback) --

    def _pairs_np(self, k: int, b0: int, b1: int) -> tuple[I64, I64, U32]:
        """Owned pairs of blocks [b0, b1) of kind k (left, right, shared-keys mask)."""
        order, st = self.plan.orders[k], self.plan.starts[k][b0:b1 + 1]
        sizes = np.diff(st)
        lefts, rights = [], []
        for s in np.unique(sizes).tolist():
            rs = st[:-1][sizes == s]
            a, b = np.triu_indices(int(s), 1)
            lefts.append(order[rs[:, None] + a[None, :]].ravel())
            rights.append(order[rs[:, None] + b[None, :]].ravel())
        li = np.concatenate(lefts) if lefts else np.zeros(0, np.int64)
        ri = np.concatenate(rights) if rights else np.zeros(0, np.int64)
        share = np.zeros(len(li), dtype=np.uint32)
        for j in range(self.n_keys):
            ka, kb = self.keys[li, j], self.keys[ri, j]
            share |= ((ka == kb) & (ka != 0)).astype(np.uint32) << np.uint32(j)
        r = self.plan.req[k]
        owned = (share & r) == r  # a pair of one block shares its kind's keys (bar a mix clash)
        ua = self.plan.usable[li]
        for k2 in range(k):
            r = self.plan.req[k2]
            owned &= ~(((share & r) == r) & (((ua >> np.uint32(k2)) & 1) == 1))
        return li[owned], ri[owned], share[owned]

    def _weights_np(self, w: Weights, li: I64, ri: I64, lv: npt.NDArray[np.int8],
                    codes: I64) -> F64:
        out = w.table[codes]
        for f in range(w.tf_codes.shape[1]):
            if not w.on[f]:
                continue
            same = (lv[:, f] == 1) & (w.tf_codes[li, f] == w.tf_codes[ri, f])
            out[same] += w.tf_adjust[li[same], f]
        a, b = w.nhs[li], w.nhs[ri]
        both = (a >= 0) & (b >= 0)
        out[both & (a == b)] = np.inf
        out[both & (a != b)] = -np.inf
        return out

    def _chunk_np(self, mode: int, k: int, b0: int, b1: int, w: Weights | None,
                  cut: float) -> tuple[Any, ...]:
        li, ri, share = self._pairs_np(k, b0, b1)
        lv = levels(self.table, li, ri, self.counts)
        codes = (lv.astype(np.int64) * self.mult).sum(axis=1) if lv.shape[1] else \
            np.zeros(len(li), np.int64)
        if mode == 0:
            hist = np.zeros((self.n_keys + 1, self.n_patterns), dtype=np.int64)
            hist[self.n_keys] = np.bincount(codes, minlength=self.n_patterns)
            for j in range(self.n_keys):
                hist[j] = np.bincount(codes[((share >> np.uint32(j)) & 1) == 1],
                                      minlength=self.n_patterns)
            return len(li), hist
        assert w is not None
        wt = self._weights_np(w, li, ri, lv, codes)
        sure, cnt = 0, None
        if mode & 1:
            fin = np.isfinite(wt)
            x = np.floor((wt[fin] - WEIGHT_LO) * WEIGHT_SCALE)
            bins = np.clip(x, 0, WEIGHT_BINS - 1).astype(np.int64)
            sure, cnt = int((wt == np.inf).sum()), np.bincount(bins, minlength=WEIGHT_BINS)
        keep = wt >= cut if mode & 2 else np.zeros(len(wt), dtype=bool)
        lo, hi = np.minimum(li[keep], ri[keep]), np.maximum(li[keep], ri[keep])
        return len(li), sure, cnt, lo, hi, wt[keep]

    # -- one chunk, either way --

    def chunk(self, mode: int, k: int, b0: int, b1: int, w: Weights | None,
              cut: float = 0.0) -> tuple[Any, ...]:
        """Mode 0: (pairs, pattern counts). Modes 1 (weight counts), 2 (pairs at or above
        ``cut``), 3 (both): (pairs, +inf pairs, weight counts, left, right, weights)."""
        if kernels is None:
            return self._chunk_np(mode, k, b0, b1, w, cut)
        wargs = None if w is None else (w.nhs, w.tf_codes, w.tf_adjust, w.on, w.table)
        if mode == 0:
            hist = np.zeros((self.n_keys + 1, self.n_patterns), dtype=np.int64)
            pairs = kernels.scan(0, k, b0, b1, self._ctx(k), wargs, hist, 0.0, 0.0, 0.0)
            return pairs, hist
        cnt = np.zeros(WEIGHT_BINS, dtype=np.int64) if mode & 1 else None
        out = kernels.scan(mode, k, b0, b1, self._ctx(k), wargs, cnt, WEIGHT_LO, WEIGHT_SCALE,
                           cut)
        if mode == 1:
            return out[0], out[1], cnt, None, None, None
        pairs, sure, lo, hi, wt = out
        return (pairs, sure, cnt, np.frombuffer(lo or b"", dtype=np.int64),
                np.frombuffer(hi or b"", dtype=np.int64), np.frombuffer(wt or b"", dtype=np.float64))

    def run(self, mode: int, w: Weights | None, cut: float = 0.0, *,
            workers: int = 1, progress: Callable[[int], None] | None = None
            ) -> Iterator[tuple[Any, ...]]:
        pieces = self.plan.chunks()
        if workers <= 1 or len(pieces) <= 1:
            for k, b0, b1, _ in pieces:
                out = self.chunk(mode, k, b0, b1, w, cut)
                if progress is not None:
                    progress(int(out[0]))
                yield out
            return
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(self.chunk, mode, k, b0, b1, w, cut)
                       for k, b0, b1, _ in pieces]
            for f in futures:
                out = f.result()
                if progress is not None:
                    progress(int(out[0]))
                yield out


def scan_patterns(s: Scan, *, workers: int = 1, progress: Callable[[int], None] | None = None
                  ) -> tuple[int, npt.NDArray[np.int64]]:
    """Candidate pairs, and level-pattern counts: row j (pairs sharing key j), last row all."""
    total = 0
    hist = np.zeros((s.n_keys + 1, s.n_patterns), dtype=np.int64)
    for pairs, h in s.run(0, None, workers=workers, progress=progress):
        total += pairs
        hist += h
    return total, hist


def _pairs_of(parts: list[tuple[I64, I64, F64]]) -> tuple[I64, I64, F64]:
    if not parts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64)
    return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
            np.concatenate([p[2] for p in parts]))


def scan_weights(s: Scan, w: Weights, *, keep_from: float | None = None, workers: int = 1
                 ) -> tuple[F64, npt.NDArray[np.int64], int, tuple[I64, I64, F64] | None]:
    """The candidate pairs' finite weights as (bin centres, counts), the +inf count, and (when
    ``keep_from`` is given) the pairs whose weight is at least ``keep_from``."""
    cnt = np.zeros(WEIGHT_BINS, dtype=np.int64)
    sure = 0
    kept: list[tuple[I64, I64, F64]] = []
    mode = 1 if keep_from is None else 3
    for _, inf, c, lo, hi, wt in s.run(mode, w, keep_from or 0.0, workers=workers):
        cnt += c
        sure += inf
        if mode == 3:
            kept.append((lo, hi, wt))
    nz = np.flatnonzero(cnt)
    centres = WEIGHT_LO + (nz.astype(np.float64) + 0.5) / WEIGHT_SCALE
    return centres, cnt[nz], sure, (_pairs_of(kept) if mode == 3 else None)


def scan_select(s: Scan, w: Weights, cut: float, *, workers: int = 1) -> tuple[I64, I64, F64]:
    """Candidate pairs whose weight is at least ``cut`` (left < right) and their weights."""
    return _pairs_of([(lo, hi, wt) for _, _, _, lo, hi, wt in s.run(2, w, cut, workers=workers)])
