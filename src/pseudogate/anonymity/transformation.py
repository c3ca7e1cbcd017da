"""One transformation (a level vector) evaluated: its classes, suppression and exact metrics.

Works on the table of distinct quasi-identifier combinations with their row counts (plus the
codes of sensitive and person columns when l-diversity or person counting needs them), so the
cost of one transformation grows with distinct combinations, not rows. A coarser
transformation is computed from any evaluated finer one's class table (roll-up).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from pseudogate.anonymity import grouping
from pseudogate.anonymity.arrays import BoolArray, Int64Array, IntArray
from pseudogate.anonymity.criteria import judge_classes
from pseudogate.anonymity.grouping import dense_ids
from pseudogate.anonymity.metrics import METRICS, Metric, loss_per_column, loss_terms, loss_value

__all__ = ["ClassTable", "NodeResult", "Problem", "evaluate"]

#: Base tables of at least this many rows memoise their codes at every level used.
_MEMO_MIN_ROWS = 100_000


@dataclass
class Problem:
    """The encoded search problem (base rows = distinct combinations)."""

    heights: tuple[int, ...]
    leaf_codes: list[IntArray]  # per QI: leaf code of each base row
    counts: Int64Array  # rows per base row
    up: list[tuple[IntArray, ...]]  # per QI, per level: leaf -> level code
    cards: list[tuple[int, ...]]  # per QI, per level: number of codes
    cover: list[tuple[IntArray, ...]]  # per QI, per level: leaf -> leaves covered
    leaves: tuple[int, ...]  # |D_i|
    k: int
    l: int | None
    max_suppressed: int
    metric: Metric
    diversity: list[tuple[IntArray, int]] = field(default_factory=list)  # sensitive codes
    persons: tuple[IntArray, int] | None = None  # person codes (k counts persons)
    _maps: dict[tuple[int, int, int], Int64Array] = field(default_factory=dict)
    _code_cover: dict[tuple[int, int], Int64Array] = field(default_factory=dict)
    _total_cover: dict[tuple[int, int], int] = field(default_factory=dict)
    _rows: int | None = None

    @property
    def base_rows(self) -> int:
        """Distinct combinations (the base table's rows)."""
        return len(self.counts)

    @property
    def rows(self) -> int:
        if self._rows is None:
            self._rows = int(self.counts.sum())
        return self._rows

    def level_map(self, qi: int, source: int, target: int) -> Int64Array:
        """Level-``source`` code -> level-``target`` code of one QI (each code has one parent)."""
        key = (qi, source, target)
        got = self._maps.get(key)
        if got is None:
            got = np.empty(self.cards[qi][source], dtype=np.int64)
            got[self.up[qi][source]] = self.up[qi][target]
            self._maps[key] = got
        return got

    def code_cover(self, qi: int, level: int) -> Int64Array:
        """Leaves covered by each level-``level`` code of one QI."""
        key = (qi, level)
        got = self._code_cover.get(key)
        if got is None:
            got = np.zeros(self.cards[qi][level], dtype=np.int64)
            got[self.up[qi][level]] = self.cover[qi][level]
            self._code_cover[key] = got
        return got

    def total_cover(self, qi: int, level: int) -> int:
        """Sum over all rows of the leaves their level-``level`` value covers."""
        key = (qi, level)
        got = self._total_cover.get(key)
        if got is None:
            got = int(self.counts @ self.cover[qi][level][self.leaf_codes[qi]])
            self._total_cover[key] = got
        return got

    def base_table(self) -> ClassTable:
        extra = [codes for codes, _ in self.diversity]
        if self.persons is not None:
            extra.append(self.persons[0])
        if len(self.counts) < _MEMO_MIN_ROWS:
            return ClassTable(tuple(0 for _ in self.heights), list(self.leaf_codes), extra,
                              self.counts)
        # Large: narrow codes (cheaper to combine) and memoised recoding.
        codes = [c.astype(np.int32) if len(up[0]) < 1 << 31 else c
                 for c, up in zip(self.leaf_codes, self.up, strict=True)]
        return ClassTable(tuple(0 for _ in self.heights), codes, extra, self.counts,
                          recoded={}, unit_counts=bool((self.counts == 1).all()))


@dataclass(frozen=True)
class ClassTable:
    """Distinct rows (QI codes at ``levels`` + sensitive/person codes) with their row counts.

    A coarser transformation's classes are unions of a finer one's, so it is evaluated from
    the smallest cached table below it instead of from the base table (roll-up).
    """

    levels: tuple[int, ...]
    codes: list[IntArray]
    extra: list[IntArray]
    counts: Int64Array
    #: Memoised codes at other levels, keyed by (qi, level), for large tables that many
    #: transformations roll up from (None: not memoised).
    recoded: dict[tuple[int, int], IntArray] | None = field(default=None, compare=False)
    #: Every count is 1 (so sizes are plain bincounts, without weights).
    unit_counts: bool = False

    def __len__(self) -> int:
        return len(self.counts)

    def group_sizes(self, groups: IntArray, n_groups: int) -> Int64Array:
        """Rows per group id (ids < ``n_groups``), as int64."""
        if self.unit_counts:
            return np.bincount(groups, minlength=n_groups)
        return np.bincount(groups, weights=self.counts, minlength=n_groups).astype(np.int64)

    def codes_at(self, problem: Problem, qi: int, level: int) -> IntArray:
        """This table's codes of one QI generalised to ``level``."""
        if self.levels[qi] == level:
            return self.codes[qi]
        if self.recoded is None:
            return problem.level_map(qi, self.levels[qi], level)[self.codes[qi]]
        got = self.recoded.get((qi, level))
        if got is None:
            got = problem.level_map(qi, self.levels[qi], level)[self.codes[qi]]
            got = got.astype(np.int32 if problem.cards[qi][level] < 1 << 31 else np.int64)
            self.recoded[(qi, level)] = got
        return got


@dataclass(frozen=True)
class NodeResult:
    """One evaluated transformation (class ids refer to the rows of the table it came from)."""

    levels: tuple[int, ...]
    suppressed: int
    acceptable: bool
    classes: int  # classes among kept rows
    smallest: int  # smallest kept class size (rows, or persons with person counting)
    metric_key: int  # exact comparison key (lower is better)
    loss_terms: tuple[tuple[int, int], ...]  # per QI (numerator, denominator) of loss_i
    discernibility: int
    dm_unsuppressed: int  # sum of squared class sizes without suppression
    class_of_row: Int64Array | None  # dense class id per source-table row (None: not asked)
    kept_class: BoolArray | None  # per class: kept?
    l_achieved: int | None

    @property
    def loss_per_column(self) -> tuple[float, ...]:
        return loss_per_column(self.loss_terms)

    @property
    def loss(self) -> float:
        """prod(1 + loss_i) ** (1/n) - 1, from the exact rational product."""
        return loss_value(self.loss_terms)


def evaluate(problem: Problem, levels: tuple[int, ...], source: ClassTable | None = None,
             *, table_limit: int | None = None, suppression_only: bool = False,
             with_classes: bool = True) -> tuple[NodeResult, ClassTable | None]:
    """Classes, suppression, acceptability and exact metrics of one transformation.

    ``source`` is any evaluated table at or below ``levels`` (default: the base table).
    Returns the result and this transformation's own (smaller) table for later roll-ups;
    an unacceptable transformation with more than ``table_limit`` classes returns no table and
    no Loss terms (nobody would use them), which saves most of the work on huge tables;
    ``suppression_only`` does the same whatever the outcome (the probe needs nothing more).
    Without ``with_classes`` the result may carry no class ids per row (the search does not
    need them), which allows grouping on mixed-radix keys without numbering the classes.
    """
    if source is None:
        source = problem.base_table()
    rows = len(source)
    codes = [source.codes_at(problem, qi, level) for qi, level in enumerate(levels)]
    cards = [problem.cards[qi][lv] for qi, lv in enumerate(levels)]
    if not with_classes and not source.extra:
        keyed = _evaluate_keyed(problem, levels, source, codes, cards, table_limit=table_limit,
                                suppression_only=suppression_only)
        if keyed is not None:
            return keyed
    cls, n_classes = dense_ids(list(zip(codes, cards, strict=True)), rows)
    counts = source.counts
    sizes = np.bincount(cls, weights=counts, minlength=n_classes).astype(np.int64)
    verdict = judge_classes(problem, sizes, cls, n_classes, source.extra)
    fail, strength, l_min = verdict.fail, verdict.strength, verdict.l_min
    suppressed = int(sizes[fail].sum())
    kept = ~fail
    n = problem.rows
    dm_all = int(sizes @ sizes)
    kept_sizes = sizes[kept]
    dm = int(kept_sizes @ kept_sizes) + n * suppressed
    if suppression_only or (table_limit is not None and suppressed > problem.max_suppressed
                            and n_classes > table_limit):
        return NodeResult(
            levels=levels, suppressed=suppressed,
            acceptable=suppressed <= problem.max_suppressed, classes=int(kept.sum()),
            smallest=int(strength[kept].min()) if kept.any() else 0, metric_key=-1,
            loss_terms=(), discernibility=dm, dm_unsuppressed=dm_all, class_of_row=cls,
            kept_class=kept, l_achieved=None,
        ), None
    first = np.empty(n_classes, dtype=np.int64)
    first[cls] = np.arange(rows, dtype=np.int64)
    class_codes = [c[first] for c in codes]
    failed_sizes = sizes[fail] if suppressed else None
    terms, key = loss_terms(problem, levels, class_codes, failed_sizes, fail, suppressed, n)
    result = NodeResult(
        levels=levels,
        suppressed=suppressed,
        acceptable=suppressed <= problem.max_suppressed,
        classes=int(kept.sum()),
        smallest=int(strength[kept].min()) if kept.any() else 0,
        metric_key=METRICS[problem.metric].key(loss_key=key, discernibility=dm),
        loss_terms=tuple(terms),
        discernibility=dm,
        dm_unsuppressed=dm_all,
        class_of_row=cls,
        kept_class=kept,
        l_achieved=int(l_min[kept].min()) if l_min is not None and kept.any() else None,
    )
    if not source.extra:
        table = ClassTable(levels, class_codes, [], sizes)
    else:
        parts = [(cls, n_classes)] + [
            (e, card) for e, (_, card) in zip(source.extra, _extra_cards(problem), strict=True)
        ]
        group, n_groups = dense_ids(parts, rows)
        g_first = np.empty(n_groups, dtype=np.int64)
        g_first[group] = np.arange(rows, dtype=np.int64)
        table = ClassTable(levels, [c[g_first] for c in codes], [e[g_first] for e in source.extra],
                           np.bincount(group, weights=counts, minlength=n_groups).astype(np.int64))
    return result, table


def _evaluate_keyed(problem: Problem, levels: tuple[int, ...], source: ClassTable,
                    codes: list[IntArray], cards: list[int], *, table_limit: int | None,
                    suppression_only: bool) -> tuple[NodeResult, ClassTable | None] | None:
    """``evaluate`` for tables without sensitive/person codes whose key space is small.

    Class sizes come from one ``bincount`` over the mixed-radix key of the generalised codes
    (no dense class numbering); the codes of a class are decoded from its key. Returns None
    when the key space is too large for that (the caller groups by hashing instead).
    """
    rows = len(source)
    used = [qi for qi, card in enumerate(cards) if card > 1]
    size = math.prod(cards[qi] for qi in used)
    if size >= 1 << 31 or size > grouping.KEYED_MAX_SPREAD * rows:
        return None
    if used:
        key = codes[used[0]].astype(np.int32, copy=True)
        for qi in used[1:]:
            key *= cards[qi]
            key += codes[qi]
    else:
        key = np.zeros(rows, dtype=np.int32)
    by_key = source.group_sizes(key, size)
    class_keys = np.flatnonzero(by_key)
    sizes = by_key[class_keys]
    n_classes = len(sizes)
    fail = judge_classes(problem, sizes, None, n_classes, []).fail
    suppressed = int(sizes[fail].sum())
    kept = ~fail
    n = problem.rows
    dm_all = int(sizes @ sizes)
    kept_sizes = sizes[kept]
    dm = int(kept_sizes @ kept_sizes) + n * suppressed
    acceptable = suppressed <= problem.max_suppressed
    smallest = int(kept_sizes.min()) if len(kept_sizes) else 0
    if suppression_only or (table_limit is not None and not acceptable
                            and n_classes > table_limit):
        return NodeResult(
            levels=levels, suppressed=suppressed, acceptable=acceptable,
            classes=len(kept_sizes), smallest=smallest, metric_key=-1, loss_terms=(),
            discernibility=dm, dm_unsuppressed=dm_all, class_of_row=None, kept_class=None,
            l_achieved=None,
        ), None
    # Decode each class's code per QI from its key (the last used QI varies fastest).
    class_codes: list[IntArray] = [np.zeros(n_classes, dtype=np.int32) for _ in levels]
    rest = class_keys
    for qi in reversed(used):
        rest, class_codes[qi] = np.divmod(rest, cards[qi])
    failed_sizes = sizes[fail] if suppressed else None
    terms, metric_key = loss_terms(problem, levels, class_codes, failed_sizes, fail, suppressed, n)
    result = NodeResult(
        levels=levels, suppressed=suppressed, acceptable=acceptable, classes=len(kept_sizes),
        smallest=smallest,
        metric_key=METRICS[problem.metric].key(loss_key=metric_key, discernibility=dm),
        loss_terms=tuple(terms), discernibility=dm, dm_unsuppressed=dm_all, class_of_row=None,
        kept_class=None, l_achieved=None,
    )
    if table_limit is not None and n_classes > table_limit:
        return result, None
    return result, ClassTable(levels, class_codes, [], sizes)


def _extra_cards(problem: Problem) -> list[tuple[None, int]]:
    cards: list[tuple[None, int]] = [(None, card) for _, card in problem.diversity]
    if problem.persons is not None:
        cards.append((None, problem.persons[1]))
    return cards

