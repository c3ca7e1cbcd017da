"""The exact search when the frequency table is held by the workers, not the client.

:mod:`pseudogate.batch.anonymise` has each worker keep its partitions' frequency tables
(:class:`BaseTable`: distinct leaf codes, sensitive and person values, row counts). When the
whole table fits the client (``client_classes`` distinct rows, after the workers have merged
the partitions' tables key by key) the client runs the unchanged search of
:mod:`pseudogate.anonymity` on it: the local engine's answer, to the last figure.

When it does not, the search is split at a **floor**, a transformation whose table does fit
(docs/anonymisation.md, "When the table is too large for the client"):

1. the floor: along a chain from the bottom of the lattice (each step raises the
   quasi-identifier with the most codes), the lowest transformation whose number of classes,
   counted exactly on the workers, is at most ``client_classes``;
2. every transformation at or above the floor is a transformation of the floor's table, whose
   Loss, discernibility and suppression are those of the full table (they count the same
   classes): the unchanged search finds the best of them on the client;
3. the transformations not above the floor are ruled out, or evaluated on the workers, by a
   branch and bound with the same order as the search: lower bounds on the metric from the
   columns' totals (exact without suppression), and on suppression from the floor (a node
   ``N`` suppresses at least the rows that ``N`` joined with the floor suppresses: its classes
   are subsets of those). A node that could still be better is evaluated on the workers: its
   classes' partial counts are shuffled by class, so that each class is counted whole in one
   task, and only sums (suppressed rows, Loss terms, discernibility) come back. An unacceptable
   node rules out everything below it; an acceptable one raises the suppression bound below it.

The best node by the search's order (metric, then level sum, then levels) is the answer of the
search over the whole lattice: the same transformation and figures as the local engine. Only
``search.evaluated`` differs: it counts the nodes this search evaluated.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from pseudogate.anonymity.arrays import Int64Array, IntArray
from pseudogate.anonymity.criteria import judge
from pseudogate.anonymity.grouping import dense_ids
from pseudogate.anonymity.hierarchies import ColumnHierarchy
from pseudogate.anonymity.lattice import Lattice, climb
from pseudogate.anonymity.metrics import METRICS, loss_terms_from
from pseudogate.anonymity.search import SearchOutcome, better, evaluate, search
from pseudogate.anonymity.transformation import NodeResult, Problem
from pseudogate.batch.runner import Held, Runner
from pseudogate.core.policy import Metric

__all__ = ["CLIENT_CLASSES", "BaseTable", "Chosen", "Criteria", "class_keys", "group_rows",
           "problem_of", "search_held"]

#: Distinct rows of a frequency table the client holds and searches (about 600 bytes each
#: during the search): beyond it, the search is split at a floor.
CLIENT_CLASSES = 8_000_000
#: Buckets of a shuffle per worker.
BUCKETS_PER_WORKER = 4
#: A probe judges the classes of one bucket in this many (docs/anonymisation.md).
PROBE_SHARE = 8
#: Probes tried before their success rate decides whether to go on probing.
PROBE_TRIAL = 8
_MIX = np.uint64(0x9E3779B97F4A7C15)


@dataclass(frozen=True)
class BaseTable:
    """Distinct rows of QI codes (one level per QI) and sensitive then person values, with
    their row counts: a frequency table, or a part of one."""

    codes: list[IntArray]
    extra: list[NDArray[Any]]
    counts: Int64Array

    def __len__(self) -> int:
        return len(self.counts)

    def take(self, rows: IntArray) -> BaseTable:
        return BaseTable([c[rows] for c in self.codes], [e[rows] for e in self.extra],
                         self.counts[rows])


def _narrow(codes: IntArray, card: int) -> IntArray:
    """Codes in the smallest integer type that holds them (the workers hold many)."""
    if card <= 1 << 16:
        return codes.astype(np.uint16)
    if card < 1 << 31:
        return codes.astype(np.int32)
    return codes.astype(np.int64)


def group_rows(codes: Sequence[IntArray], cards: Sequence[int], extra: Sequence[NDArray[Any]],
               counts: Int64Array) -> BaseTable:
    """The distinct rows of (codes, extra values) with their summed counts."""
    n = len(counts)
    columns: list[tuple[IntArray, int]] = list(zip(codes, cards, strict=True))
    for values in extra:
        factor, uniques = pd.factorize(values, sort=False)
        columns.append((factor.astype(np.int64), max(len(uniques), 1)))
    if not columns:
        total = np.array([int(counts.sum())] if n else [], dtype=np.int64)
        return BaseTable([], [], total)
    ids, groups = dense_ids(columns, n)
    first = np.empty(groups, dtype=np.int64)
    first[ids] = np.arange(n, dtype=np.int64)
    summed = np.bincount(ids, weights=counts, minlength=groups).astype(np.int64)
    return BaseTable([_narrow(np.asarray(c)[first], card) for c, card in zip(codes, cards,
                                                                                strict=True)],
                     [np.asarray(e)[first] for e in extra], summed)


def _concat(tables: Sequence[BaseTable]) -> BaseTable:
    tables = [t for t in tables if len(t)] or list(tables[:1])
    if len(tables) == 1:
        return tables[0]
    return BaseTable([np.concatenate(c) for c in zip(*(t.codes for t in tables), strict=True)],
                     [np.concatenate(e) for e in zip(*(t.extra for t in tables), strict=True)],
                     np.concatenate([t.counts for t in tables]))


def _bucket_of(codes: Sequence[IntArray], rows: int, buckets: int) -> IntArray:
    """A bucket per row from its codes alone: rows of one class always meet in one bucket."""
    h = np.zeros(rows, dtype=np.uint64)
    for c in codes:
        h = (h + c.astype(np.uint64)) * _MIX
    h ^= h >> np.uint64(31)
    return (h % np.uint64(buckets)).astype(np.int64)


# -- on the workers -------------------------------------------------------------------------


def _split_at(table: BaseTable, *, buckets: int, maps: tuple[IntArray, ...],
              cards: tuple[int, ...]) -> list[BaseTable]:
    """One partition's table at other levels (``maps``: leaf -> code), cut into buckets."""
    grouped = group_rows([m[c] for m, c in zip(maps, table.codes, strict=True)], cards,
                         table.extra, table.counts)
    return _cut(grouped, _bucket_of(grouped.codes, len(grouped), buckets), buckets)


def _cut(table: BaseTable, bucket: IntArray, buckets: int) -> list[BaseTable]:
    """``table``'s rows by bucket (``bucket`` < ``buckets`` per row), in row order within each."""
    order = np.argsort(bucket, kind="stable")
    edges = np.searchsorted(bucket[order], np.arange(buckets + 1))
    return [table.take(order[edges[b]:edges[b + 1]]) for b in range(buckets)]


def _probe_split(table: BaseTable, *, buckets: int, maps: tuple[IntArray, ...],
                 cards: tuple[int, ...], share: int) -> list[BaseTable]:
    """The rows of one partition's table, at other levels, whose class hash falls in the first
    ``buckets`` of ``share * buckets`` (whole classes: a sample of about one in ``share``
    whose suppressed rows the transformation suppresses), cut into those buckets."""
    codes = [m[c] for m, c in zip(maps, table.codes, strict=True)]
    bucket = _bucket_of(codes, len(table), share * buckets)
    rows = np.flatnonzero(bucket < buckets)
    sample = group_rows([c[rows] for c in codes], cards, [e[rows] for e in table.extra],
                        table.counts[rows])
    return _cut(sample, _bucket_of(sample.codes, len(sample), share * buckets), buckets)


def _merge(pieces: list[BaseTable], *, cards: tuple[int, ...]) -> BaseTable:
    """One bucket's pieces as one table (each class once)."""
    table = _concat(pieces)
    return group_rows(table.codes, cards, table.extra, table.counts)


def _itself(value: Any) -> Any:
    return value


def _size(table: BaseTable) -> int:
    return len(table)


@dataclass(frozen=True)
class Criteria:
    """The privacy model as the workers apply it."""

    k: int
    l: int | None
    sensitive: int  # sensitive columns among the extra values (the person, if any, is last)
    persons: bool


@dataclass(frozen=True)
class _Figures:
    """What one bucket's classes add to a transformation's figures."""

    suppressed: int
    failed_cover: tuple[int, ...]  # per QI: leaves covered by suppressed rows' values
    dm_all: int
    dm_kept: int
    kept: int
    smallest: int | None
    l_min: int | None
    sizes: Int64Array | None = None  # final: strength of each kept class
    failed_codes: list[IntArray] | None = None  # final: codes of the suppressed classes


def _judge_table(table: BaseTable, *, cards: tuple[int, ...], criteria: Criteria,
                 covers: tuple[Int64Array, ...], final: bool) -> _Figures:
    """One bucket's classes judged (every class of the bucket is whole in it)."""
    rows = len(table)
    cls, n_classes = dense_ids(list(zip(table.codes, cards, strict=True)), rows)
    sizes = np.bincount(cls, weights=table.counts, minlength=n_classes).astype(np.int64)
    extra = [pd.factorize(values, sort=False) for values in table.extra]
    coded = [(f.astype(np.int64), max(len(u), 1)) for f, u in extra]
    verdict = judge(sizes, cls, n_classes, k=criteria.k, l=criteria.l,
                    diversity=coded[: criteria.sensitive],
                    persons=coded[-1] if criteria.persons else None)
    fail, strength = verdict.fail, verdict.strength
    kept = ~fail
    first = np.empty(n_classes, dtype=np.int64)
    first[cls] = np.arange(rows, dtype=np.int64)
    failed_first = first[fail]
    failed_sizes = sizes[fail]
    kept_sizes = sizes[kept]
    return _Figures(
        suppressed=int(failed_sizes.sum()),
        failed_cover=tuple(int(failed_sizes @ cover[c[failed_first]])
                           for c, cover in zip(table.codes, covers, strict=True)),
        dm_all=int(sizes @ sizes),
        dm_kept=int(kept_sizes @ kept_sizes),
        kept=int(kept.sum()),
        smallest=int(strength[kept].min()) if kept.any() else None,
        l_min=int(verdict.l_min[kept].min()) if verdict.l_min is not None and kept.any()
        else None,
        sizes=np.asarray(strength[kept], dtype=np.int64) if final else None,
        failed_codes=[c[failed_first] for c in table.codes] if final else None,
    )


def _judge_pieces(pieces: list[BaseTable], *, cards: tuple[int, ...], criteria: Criteria,
                  covers: tuple[Int64Array, ...]) -> _Figures:
    return _judge_table(_merge(pieces, cards=cards), cards=cards, criteria=criteria,
                        covers=covers, final=False)


def _leaf_counts(table: BaseTable, *, cards: tuple[int, ...]) -> list[Int64Array]:
    """Rows per leaf of each QI."""
    return [np.bincount(c, weights=table.counts, minlength=card).astype(np.int64)
            for c, card in zip(table.codes, cards, strict=True)]


# -- on the client --------------------------------------------------------------------------


@dataclass
class _ColumnTotals:
    """A table's figures that the metric bounds need, from its columns' totals alone
    (:class:`pseudogate.anonymity.metrics.Figures`)."""

    heights: tuple[int, ...]
    leaves: tuple[int, ...]
    cards: list[tuple[int, ...]]
    cover: list[tuple[IntArray, ...]]
    rows: int
    base_rows: int
    leaf_counts: list[Int64Array]
    _covered: dict[tuple[int, int], int] = field(default_factory=dict)

    def total_cover(self, qi: int, level: int) -> int:
        got = self._covered.get((qi, level))
        if got is None:
            got = int(self.leaf_counts[qi] @ self.cover[qi][level])
            self._covered[(qi, level)] = got
        return got


@dataclass(frozen=True)
class Chosen:
    """The search's answer: its outcome (levels of the full hierarchies), the problem the
    client searched (from ``floor`` up), and, when the best node is below the floor, the sizes
    and suppressed class codes the workers counted."""

    problem: Problem
    floor: tuple[int, ...]
    outcome: SearchOutcome
    sizes: Int64Array | None = None
    failed_codes: list[IntArray] | None = None

    def failed_keys(self, cards: Sequence[int]) -> Int64Array:
        """Sorted mixed-radix keys (``cards`` at the chosen levels) of the suppressed classes."""
        if self.failed_codes is not None:
            codes = self.failed_codes
        else:
            best = self.outcome.best
            assert best.class_of_row is not None and best.kept_class is not None
            rows = np.flatnonzero(~best.kept_class[best.class_of_row])
            problem = self.problem
            codes = [problem.level_map(qi, 0, level - self.floor[qi])[problem.leaf_codes[qi][rows]]
                     for qi, level in enumerate(best.levels)]
        count = len(codes[0]) if codes else int(self.outcome.best.suppressed > 0)
        return np.unique(class_keys(codes, cards, count))


def class_keys(codes: Sequence[IntArray], cards: Sequence[int], rows: int) -> Int64Array:
    """The mixed-radix key of each row's codes (the last QI varies fastest; zeros without
    QIs): how the client names suppressed classes and the workers find their rows."""
    key = np.zeros(rows, dtype=np.int64)
    for c, card in zip(codes, cards, strict=True):
        key *= card
        key += c.astype(np.int64)
    return key


def _rebased(h: ColumnHierarchy, floor: int) -> tuple[tuple[Int64Array, ...], tuple[int, ...],
                                                      tuple[IntArray, ...]]:
    """``up``, cardinalities and ``cover`` of a hierarchy whose leaves are its ``floor``-level
    codes (each keeps the covers of the original leaves: Loss is unchanged)."""
    cards = tuple(len(labels) for labels in h.labels)
    if floor == 0:
        return h.up, cards, h.cover
    up = [h.level_map(floor, level) for level in range(floor, h.height)]
    cover = [h.code_cover(level)[to] for level, to in zip(range(floor, h.height), up,
                                                          strict=True)]
    return tuple(up), cards[floor:], tuple(cover)


def problem_of(table: BaseTable, hierarchies: Sequence[ColumnHierarchy], floor: Sequence[int],
               *, criteria: Criteria, max_suppressed: int, metric: Metric) -> Problem:
    """The search problem of a frequency table whose QI codes are at ``floor``."""
    extra_codes: list[tuple[IntArray, int]] = []
    for values in table.extra:
        codes, uniques = pd.factorize(values, sort=False)
        extra_codes.append((codes.astype(np.int64), len(uniques)))
    keys: list[IntArray] = [c.astype(np.int64) for c in table.codes]
    keys += [codes for codes, _ in extra_codes]
    if keys and len(table) > 1:
        # Base rows in the order of their codes: the answer does not depend on it, the
        # search's speed does (locality).
        order = np.lexsort(keys[::-1])
        table = table.take(order)
        extra_codes = [(codes[order], card) for codes, card in extra_codes]
    rebased = [_rebased(h, f) for h, f in zip(hierarchies, floor, strict=True)]
    return Problem(
        heights=tuple(len(up) for up, _, _ in rebased),
        leaf_codes=[c.astype(np.int64) for c in table.codes],
        counts=table.counts,
        up=[up for up, _, _ in rebased],
        cards=[cards for _, cards, _ in rebased],
        cover=[cover for _, _, cover in rebased],
        leaves=tuple(h.leaves for h in hierarchies),
        k=criteria.k,
        l=criteria.l,
        max_suppressed=max_suppressed,
        metric=metric,
        diversity=extra_codes[: criteria.sensitive],
        persons=extra_codes[-1] if criteria.persons else None,
    )


@dataclass
class _HeldTable:
    """A frequency table held on the workers in buckets (classes whole in one bucket, except
    for the partitions' base tables) and its rows."""

    levels: tuple[int, ...]
    tables: list[Held]
    rows: int
    bucketed: bool = True  # False: the partitions' tables (a class may be in several)


class _HeldSearch:
    """Tables and evaluations on the workers.

    Like the client's search, a transformation is counted from the smallest held table below
    it (roll-up): tables of evaluated transformations stay held while they fit a budget of
    rows (as many as the base table), and release at :meth:`close`.
    """

    def __init__(self, runner: Runner, held: Sequence[Held], rows: int,
                 hierarchies: Sequence[ColumnHierarchy], criteria: Criteria, buckets: int) -> None:
        self.runner = runner
        self.hierarchies = hierarchies
        self.criteria = criteria
        self.buckets = buckets
        self.evaluated = 0
        self.probed = 0
        base = _HeldTable(tuple(0 for _ in hierarchies), list(held), rows, bucketed=False)
        self.cache: list[_HeldTable] = [base]
        self.budget = rows
        self.used = 0

    def close(self) -> None:
        for entry in self.cache[1:]:
            self.runner.release(entry.tables)
        del self.cache[1:]

    def _source(self, levels: tuple[int, ...]) -> tuple[_HeldTable, tuple[IntArray, ...],
                                                         tuple[int, ...]]:
        """The smallest held table at or below ``levels``, the maps of its codes to
        ``levels``' codes, and the cardinalities there."""
        below = [e for e in self.cache if all(s <= lv for s, lv in zip(e.levels, levels,
                                                                          strict=True))]
        source = min(below, key=lambda e: e.rows)
        maps = tuple(h.level_map(s, lv)
                     for h, s, lv in zip(self.hierarchies, source.levels, levels, strict=True))
        cards = tuple(h.cardinality(lv) for h, lv in zip(self.hierarchies, levels, strict=True))
        return source, maps, cards

    def _covers(self, levels: tuple[int, ...]) -> tuple[Int64Array, ...]:
        """Per QI, the leaves each code at ``levels`` covers."""
        return tuple(h.code_cover(lv) for h, lv in zip(self.hierarchies, levels, strict=True))

    def suppressed_at_least(self, levels: tuple[int, ...]) -> int:
        """Rows ``levels`` suppresses among about one in ``PROBE_SHARE`` of its classes (whole
        classes, chosen by hash, judged in buckets on every worker): a lower bound on its
        suppression."""
        source, maps, cards = self._source(levels)
        reduce = functools.partial(_judge_pieces, cards=cards, criteria=self.criteria,
                                   covers=self._covers(levels))
        held = self.runner.shuffle(_probe_split, source.tables, self.buckets, reduce,
                                   maps=maps, cards=cards, share=PROBE_SHARE)
        try:
            figures: list[_Figures] = self.runner.map_held(_itself, held)
        finally:
            self.runner.release(held)
        self.probed += 1
        return sum(f.suppressed for f in figures)

    def table_at(self, levels: tuple[int, ...]) -> tuple[_HeldTable, bool]:
        """The table at ``levels`` and whether it stays held (else release it after use)."""
        source, maps, cards = self._source(levels)
        if source.levels == levels and source.bucketed:
            return source, True
        tables = self.runner.shuffle(_split_at, source.tables, self.buckets,
                                     functools.partial(_merge, cards=cards), maps=maps,
                                     cards=cards)
        entry = _HeldTable(levels, tables, sum(self.runner.map_held(_size, tables)))
        keep = entry.rows <= min(self.cache[0].rows // 2, self.budget - self.used)
        if keep:
            self.cache.append(entry)
            self.used += entry.rows
        return entry, keep

    def evaluate(self, levels: tuple[int, ...], *, n: int, max_suppressed: int,
                 totals: _ColumnTotals, metric: Metric, final: bool = False
                 ) -> tuple[NodeResult, list[_Figures]]:
        """One transformation evaluated on the workers (its classes counted whole, by bucket)."""
        covers = self._covers(levels)
        cards = tuple(h.cardinality(lv) for h, lv in zip(self.hierarchies, levels, strict=True))
        entry, kept = self.table_at(levels)
        try:
            figures: list[_Figures] = self.runner.map_held(
                _judge_table, entry.tables, cards=cards, criteria=self.criteria,
                covers=covers, final=final)
        finally:
            if not kept:
                self.runner.release(entry.tables)
        self.evaluated += 1
        suppressed = sum(f.suppressed for f in figures)
        failed = [sum(f.failed_cover[qi] for f in figures) for qi in range(len(levels))]
        terms, key = loss_terms_from(totals, levels, lambda qi, _lv: failed[qi], suppressed, n)
        dm = sum(f.dm_kept for f in figures) + n * suppressed
        smallest = [f.smallest for f in figures if f.smallest is not None]
        l_min = [f.l_min for f in figures if f.l_min is not None]
        result = NodeResult(
            levels=levels, suppressed=suppressed, acceptable=suppressed <= max_suppressed,
            classes=sum(f.kept for f in figures), smallest=min(smallest, default=0),
            metric_key=METRICS[metric].key(loss_key=key, discernibility=dm),
            loss_terms=tuple(terms), discernibility=dm,
            dm_unsuppressed=sum(f.dm_all for f in figures), class_of_row=None,
            kept_class=None,
            l_achieved=min(l_min) if l_min and self.criteria.sensitive else None,
        )
        return result, figures


def search_held(runner: Runner, held: Sequence[Held], hierarchies: Sequence[ColumnHierarchy], *,
                criteria: Criteria, n: int, max_suppressed: int, metric: Metric,
                client_classes: int = CLIENT_CLASSES, workers: int = 1,
                progress: Callable[[str], None] | None = None) -> Chosen:
    """The exact search over the frequency table held in ``held`` (one :class:`BaseTable` per
    partition, leaf codes of ``hierarchies``)."""
    start = time.perf_counter()
    say = progress or (lambda _message: None)
    q = len(hierarchies)
    bottom = tuple(0 for _ in range(q))
    make = functools.partial(problem_of, hierarchies=hierarchies, criteria=criteria,
                             max_suppressed=max_suppressed, metric=metric)
    parts = runner.map_held(_size, held)
    if sum(parts) <= client_classes:  # every partition's table here, merged by the client
        tables: list[BaseTable] = runner.map_held(_itself, held)
        table = _concat(tables)
        cards = tuple(h.cardinality(0) for h in hierarchies)
        table = group_rows(table.codes, cards, table.extra, table.counts)
        return _search_client(make(table, floor=bottom), bottom, start)
    say(f"frequency table: up to {sum(parts):,} distinct rows in the partitions, more than "
        f"this process searches itself ({client_classes:,}): counting classes on the workers")
    work = _HeldSearch(runner, held, sum(parts), hierarchies, criteria,
                       buckets=max(2, BUCKETS_PER_WORKER * workers))
    try:
        return _search_from_floor(work, hierarchies, n=n, client_classes=client_classes,
                                  make=make, max_suppressed=max_suppressed, metric=metric,
                                  say=say, start=start)
    finally:
        work.close()


def _search_from_floor(work: _HeldSearch, hierarchies: Sequence[ColumnHierarchy], *, n: int,
                       client_classes: int, make: Callable[..., Problem], max_suppressed: int,
                       metric: Metric, say: Callable[[str], None], start: float) -> Chosen:
    runner = work.runner
    held = work.cache[0].tables
    bottom = work.cache[0].levels
    floor, floor_table = _floor(work, hierarchies, client_classes, say)
    problem = make(floor_table, floor=floor)
    del floor_table
    if floor == bottom:
        return _search_client(problem, floor, start)
    say(f"frequency table too large for the client: searching from the floor {floor}, "
        "lower transformations on the workers")
    cards_of = [h.cardinality(0) for h in hierarchies]
    leaf_counts = [np.zeros(card, dtype=np.int64) for card in cards_of]
    for counts in runner.map_held(_leaf_counts, held, cards=tuple(cards_of)):
        for total, part in zip(leaf_counts, counts, strict=True):
            total += part
    totals = _ColumnTotals(
        heights=tuple(h.height for h in hierarchies), leaves=tuple(h.leaves for h in hierarchies),
        cards=[tuple(len(lab) for lab in h.labels) for h in hierarchies],
        cover=[h.cover for h in hierarchies], rows=n, base_rows=n, leaf_counts=leaf_counts)
    return _search_split(work, problem, floor, totals, n=n, max_suppressed=max_suppressed,
                         metric=metric, start=start, say=say)


def _search_client(problem: Problem, floor: tuple[int, ...], start: float) -> Chosen:
    outcome = search(problem)
    levels = tuple(f + lv for f, lv in zip(floor, outcome.best.levels, strict=True))
    total = math.prod(problem.heights) if problem.heights else 1
    outcome = replace(outcome, best=replace(outcome.best, levels=levels), transformations=total,
                      seconds=time.perf_counter() - start)
    return Chosen(problem, floor, outcome)


def _chain(hierarchies: Sequence[ColumnHierarchy]) -> list[tuple[int, ...]]:
    """From the bottom to the top, raising one QI per step: the one with the most codes."""
    levels = [0] * len(hierarchies)
    chain = [tuple(levels)]
    while True:
        open_ = [qi for qi, h in enumerate(hierarchies) if levels[qi] + 1 < h.height]
        if not open_:
            return chain
        qi = max(open_, key=lambda i: (hierarchies[i].cardinality(levels[i]), -i))
        levels[qi] += 1
        chain.append(tuple(levels))


def _floor(work: _HeldSearch, hierarchies: Sequence[ColumnHierarchy], client_classes: int,
           say: Callable[[str], None]) -> tuple[tuple[int, ...], BaseTable]:
    """The lowest node of the chain whose table has at most ``client_classes`` rows (the top
    when none has), lowered QI by QI while its table still fits, and that table. Classes are
    counted exactly (by bucket) on the workers."""
    chain = _chain(hierarchies)
    runner = work.runner
    lo, hi = 0, len(chain) - 1
    found, held = work.table_at(chain[lo])
    if found.rows > client_classes:
        if not held:
            runner.release(found.tables)
        found, held = work.table_at(chain[hi])
        while hi - lo > 1:  # rows(lo) > limit >= rows(hi), or hi is the top
            mid = (lo + hi) // 2
            probe, probe_held = work.table_at(chain[mid])
            say(f"floor candidate {chain[mid]}: {probe.rows:,} classes")
            if probe.rows <= client_classes:
                if not held:
                    runner.release(found.tables)
                hi, found, held = mid, probe, probe_held
            else:
                if not probe_held:
                    runner.release(probe.tables)
                lo = mid
        lo = hi
    floor = chain[lo]
    # Then lower the floor one QI at a time while its table still fits: the chain moves in
    # big steps (one level of the QI with the most codes), and every transformation the floor
    # leaves below it costs the workers a pass.
    lowered = True
    while lowered and found.rows <= client_classes:
        lowered = False
        for qi in range(len(floor)):
            if floor[qi] == 0:
                continue
            trial = tuple(lv - (i == qi) for i, lv in enumerate(floor))
            probe, probe_held = work.table_at(trial)
            if probe.rows <= client_classes:
                say(f"floor lowered to {trial}: {probe.rows:,} classes")
                if not held:
                    runner.release(found.tables)
                floor, found, held, lowered = trial, probe, probe_held, True
            elif not probe_held:
                runner.release(probe.tables)
    try:
        table = _concat(runner.map_held(_itself, found.tables))
    finally:
        if not held:
            runner.release(found.tables)
    return floor, table


def _search_split(work: _HeldSearch, problem: Problem, floor: tuple[int, ...],
                  totals: _ColumnTotals, *, n: int, max_suppressed: int, metric: Metric,
                  start: float, say: Callable[[str], None]) -> Chosen:
    """The search above the floor on the client, then below it with the workers' help."""
    above = search(problem)
    heights = totals.heights
    lattice = Lattice.of(heights)
    nodes = lattice.nodes
    floor_arr = np.array(floor, dtype=nodes.dtype)

    def full(rebased: Sequence[int]) -> tuple[int, ...]:
        return tuple(int(f) + int(lv) for f, lv in zip(floor, rebased, strict=True))

    best = replace(above.best, levels=full(above.best.levels))
    say(f"best at or above the floor: {best.levels} ({above.evaluated:,} transformations "
        f"evaluated here); now the transformations below the floor")
    from_floor = True
    rules = METRICS[metric]
    alive = ~np.all(nodes >= floor_arr, axis=1)
    supp_lb = np.zeros(len(lattice), dtype=np.int64)
    bounds = rules.lower_bound(totals, nodes, supp_lb)
    rank = lattice.rank()
    best_float = rules.log_key(best.metric_key)
    known: dict[tuple[int, ...], NodeResult] = {}
    joined: dict[tuple[int, ...], int] = {}

    def with_floor(levels: tuple[int, ...]) -> tuple[int, ...]:
        """``levels`` joined with the floor: each QI at the higher of the two levels."""
        return tuple(max(lv, f) for lv, f in zip(levels, floor, strict=True))

    def above_floor(levels: tuple[int, ...]) -> bool:
        return all(lv >= f for lv, f in zip(levels, floor, strict=True))

    def floor_suppressed(levels: tuple[int, ...]) -> int:
        """Rows suppressed by ``levels`` joined with the floor (a bound for ``levels``)."""
        up = with_floor(levels)
        got = joined.get(up)
        if got is None:
            result, _ = evaluate(problem, tuple(u - f for u, f in zip(up, floor, strict=True)),
                                 suppression_only=True, with_classes=False)
            got = joined[up] = result.suppressed
        return got

    def on_workers(levels: tuple[int, ...]) -> NodeResult:
        got = known.get(levels)
        if got is None:
            got, _ = work.evaluate(levels, n=n, max_suppressed=max_suppressed, totals=totals,
                                   metric=metric)
            known[levels] = got
            if work.evaluated % 10 == 0:
                say(f"{work.evaluated:,} transformations evaluated on the workers "
                    f"({time.perf_counter() - start:,.0f} s)")
        return got

    probes: dict[tuple[int, ...], bool] = {}

    def proven_unacceptable(levels: tuple[int, ...]) -> bool:
        """Unacceptable by a bound: the join with the floor, or a probe on the workers."""
        if floor_suppressed(levels) > max_suppressed:
            return True
        if above_floor(levels):
            return False  # at or above the floor, that bound is its exact suppression
        if levels in known:
            return not known[levels].acceptable
        got = probes.get(levels)
        if got is None:
            if not probing_pays():
                return False
            got = probes[levels] = work.suppressed_at_least(levels) > max_suppressed
            if work.probed % 10 == 0:
                say(f"{work.probed:,} transformations probed on the workers, "
                    f"{sum(probes.values()):,} proven unacceptable "
                    f"({time.perf_counter() - start:,.0f} s)")
        return got

    def probing_pays() -> bool:
        """A probe saves the grouping of 7 classes in 8 but not the pass over the held table:
        probes are used while at least one in three proves its transformation unacceptable
        (after a first few)."""
        hits = sum(probes.values())
        return len(probes) < PROBE_TRIAL or 3 * hits >= len(probes)


    def raise_bound(index: int, suppressed: int) -> None:
        grow = np.flatnonzero(lattice.below(index) & alive & (supp_lb < suppressed))
        if len(grow):
            supp_lb[grow] = suppressed
            bounds.update(grow, supp_lb)

    tol = rules.tolerance
    while True:
        candidates = np.flatnonzero(alive)
        if not len(candidates):
            break
        low = bounds.values[candidates].min()
        if low > best_float + tol:
            break
        near = candidates[bounds.values[candidates] <= low + tol]
        pick = int(near[np.argmin(rank[near])])
        levels = lattice.levels_of(pick)
        bound = floor_suppressed(levels)
        if bound > max_suppressed:  # so is everything below the join with the floor
            alive &= ~lattice.below(lattice.index_of(with_floor(levels)))
            continue
        if supp_lb[pick] < bound:
            raise_bound(lattice.index_of(with_floor(levels)), bound)
            if bounds.values[pick] > best_float + tol:
                alive[pick] = False
                continue
        alive[pick] = False
        if proven_unacceptable(levels):
            # Climbing rules out the down-set of a higher unacceptable node; it only steps
            # where a bound proves it (never a full evaluation: most steps would be
            # acceptable, and each costs a pass over a held table).
            top = climb(levels, lattice.tops, proven_unacceptable)
            alive &= ~lattice.below(lattice.index_of(top))
            continue
        result = on_workers(levels)
        if not result.acceptable:
            top = climb(levels, lattice.tops, proven_unacceptable)
            alive &= ~lattice.below(lattice.index_of(top))
        else:
            if better(result, best):
                best, from_floor = result, False
                best_float = rules.log_key(result.metric_key)
            if result.suppressed:
                raise_bound(pick, result.suppressed)
        bounds.learn(pick, result, alive)
    say(f"below the floor: {work.evaluated:,} transformations evaluated and {work.probed:,} "
        f"probed on the workers")
    evaluated = above.evaluated + work.evaluated + work.probed
    total = len(lattice)
    if from_floor:
        final, _ = evaluate(problem, tuple(lv - f for lv, f in zip(best.levels, floor,
                                                                     strict=True)))
        outcome = SearchOutcome(replace(final, levels=best.levels), total, evaluated,
                                time.perf_counter() - start, exact=above.exact)
        return Chosen(problem, floor, outcome)
    final, figures = work.evaluate(best.levels, n=n, max_suppressed=max_suppressed,
                                   totals=totals, metric=metric, final=True)
    evaluated = above.evaluated + work.evaluated + work.probed
    sizes = np.concatenate([f.sizes for f in figures if f.sizes is not None])
    failed = [np.concatenate(c) for c in zip(*(f.failed_codes for f in figures
                                                if f.failed_codes is not None), strict=True)]
    outcome = SearchOutcome(final, total, evaluated, time.perf_counter() - start, exact=True)
    return Chosen(problem, floor, outcome, sizes=sizes, failed_codes=failed)

