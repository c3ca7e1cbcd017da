"""The risk and utility report of one anonymisation (fields in docs/anonymisation.md).

:class:`AnonymisationReport` is a frozen dataclass; adapters turn it into JSON at the edge
with :meth:`AnonymisationReport.to_json` (field names, order and values as documented).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from pseudogate.anonymity.arrays import IntArray
from pseudogate.anonymity.search import SearchOutcome
from pseudogate.anonymity.transformation import Problem
from pseudogate.core.policy import Metric, Policy

__all__ = ["AnonymisationReport", "PrivacyModel", "ProsecutorRisk", "SearchSummary",
           "build_report", "class_sizes"]


@dataclass(frozen=True)
class PrivacyModel:
    """The privacy model applied: ``suppression_limit`` exact as text (``"1/20"``),
    ``max_suppressed`` in rows, ``counted_by`` ``"rows"`` or the person column."""

    k: int
    l: int | None
    suppression_limit: str
    max_suppressed: int
    metric: Metric
    counted_by: str

    def to_json(self) -> dict[str, Any]:
        return {
            "k": self.k,
            "l": self.l,
            "suppression_limit": self.suppression_limit,
            "max_suppressed": self.max_suppressed,
            "metric": self.metric.value,
            "counted_by": self.counted_by,
        }


@dataclass(frozen=True)
class ProsecutorRisk:
    """Re-identification risk under the prosecutor model: 1 / smallest class, and the mean
    over released records of 1 / their class size (0 when nothing is released)."""

    highest: float
    average: float

    def to_json(self) -> dict[str, Any]:
        return {"highest": self.highest, "average": self.average}


@dataclass(frozen=True)
class SearchSummary:
    """The lattice size, transformations evaluated, seconds of the search alone (rounded to
    microseconds) and whether the exact search ran (else the heuristic: not optimal)."""

    transformations: int
    evaluated: int
    seconds: float
    exact: bool

    @property
    def method(self) -> str:
        return "exact" if self.exact else "heuristic"

    def to_json(self) -> dict[str, Any]:
        return {
            "transformations": self.transformations,
            "evaluated": self.evaluated,
            "seconds": self.seconds,
            "method": self.method,
            "optimal": self.exact,
        }


@dataclass(frozen=True)
class AnonymisationReport:
    """One anonymisation's report. Mappings are read-only and keep policy order (class sizes
    ascending); class sizes count persons with a person column."""

    policy: str
    policy_fingerprint: str
    privacy: PrivacyModel
    quasi_identifiers: tuple[str, ...]
    sensitive_columns: tuple[str, ...]
    levels: Mapping[str, int]
    k_achieved: int | None
    l_achieved: int | None
    rows_in: int
    rows_out: int
    suppressed: int
    classes: int
    loss: float
    loss_per_column: Mapping[str, float]
    discernibility: int
    prosecutor_risk: ProsecutorRisk
    records_by_class_size: Mapping[int, float]  # sizes 1 … k+4
    records_in_larger_classes: float
    class_size_histogram: Mapping[int, int]  # class size -> number of classes
    search: SearchSummary

    def to_json(self) -> dict[str, Any]:
        """The JSON report: plain dicts, lists and numbers, in the documented field order."""
        return {
            "policy": self.policy,
            "policy_fingerprint": self.policy_fingerprint,
            "privacy": self.privacy.to_json(),
            "quasi_identifiers": list(self.quasi_identifiers),
            "sensitive_columns": list(self.sensitive_columns),
            "levels": dict(self.levels),
            "k_achieved": self.k_achieved,
            "l_achieved": self.l_achieved,
            "rows_in": self.rows_in,
            "rows_out": self.rows_out,
            "suppressed": self.suppressed,
            "classes": self.classes,
            "loss": self.loss,
            "loss_per_column": dict(self.loss_per_column),
            "discernibility": self.discernibility,
            "prosecutor_risk": self.prosecutor_risk.to_json(),
            "records_by_class_size": {str(size): share
                                      for size, share in self.records_by_class_size.items()},
            "records_in_larger_classes": self.records_in_larger_classes,
            "class_size_histogram": {str(size): count
                                     for size, count in self.class_size_histogram.items()},
            "search": self.search.to_json(),
        }


def class_sizes(problem: Problem, outcome: SearchOutcome) -> IntArray:
    """Sizes of the released classes: rows, or distinct persons with person counting."""
    best = outcome.best
    cls = best.class_of_row
    assert cls is not None and best.kept_class is not None  # the search's final result has them
    n_classes = len(best.kept_class)
    if problem.persons is not None:
        codes, card = problem.persons
        pairs = pd.unique(cls * max(card, 1) + codes)
        sizes = np.bincount(pairs // max(card, 1), minlength=n_classes)
    else:
        sizes = np.bincount(cls, weights=problem.counts, minlength=n_classes).astype(np.int64)
    return sizes[best.kept_class]


def build_report(
    *,
    policy: Policy,
    problem: Problem,
    outcome: SearchOutcome,
    qi_names: list[str],
    person_column: str | None,
    sizes: IntArray | None = None,
) -> AnonymisationReport:
    """The report of ``outcome``; ``sizes``: the released classes' sizes when they were
    counted elsewhere (a cluster), else from the best result's class ids over ``problem``."""
    best = outcome.best
    privacy = policy.privacy
    assert privacy is not None
    rows_in = problem.rows
    rows_out = rows_in - best.suppressed
    if sizes is None:
        sizes = class_sizes(problem, outcome)
    units = int(sizes.sum())  # records (rows or persons) released
    k = privacy.k
    by_size: dict[int, float] = {}
    for s in range(1, k + 5):
        in_size = int(sizes[sizes == s].sum())
        by_size[s] = in_size / units if units else 0.0
    larger = int(sizes[sizes > k + 4].sum())
    frac = privacy.suppression_fraction
    return AnonymisationReport(
        policy=policy.name,
        policy_fingerprint=policy.fingerprint,
        privacy=PrivacyModel(
            k=k,
            l=privacy.l,
            suppression_limit=f"{frac.numerator}/{frac.denominator}",
            max_suppressed=problem.max_suppressed,
            metric=privacy.metric,
            counted_by=person_column or "rows",
        ),
        quasi_identifiers=tuple(qi_names),
        sensitive_columns=tuple(policy.sensitive_columns),
        levels=_frozen({name: int(level)
                        for name, level in zip(qi_names, best.levels, strict=True)}),
        k_achieved=int(sizes.min()) if len(sizes) else None,
        l_achieved=best.l_achieved,
        rows_in=rows_in,
        rows_out=rows_out,
        suppressed=best.suppressed,
        classes=len(sizes),
        loss=best.loss,
        loss_per_column=_frozen(dict(zip(qi_names, best.loss_per_column, strict=True))),
        discernibility=best.discernibility,
        prosecutor_risk=ProsecutorRisk(
            highest=1.0 / int(sizes.min()) if len(sizes) else 0.0,
            average=len(sizes) / units if units else 0.0,
        ),
        records_by_class_size=_frozen(by_size),
        records_in_larger_classes=larger / units if units else 0.0,
        class_size_histogram=_frozen(_histogram(sizes)),
        search=SearchSummary(
            transformations=outcome.transformations,
            evaluated=outcome.evaluated,
            seconds=round(outcome.seconds, 6),
            exact=outcome.exact,
        ),
    )


_K = TypeVar("_K")
_V = TypeVar("_V")


def _frozen(mapping: dict[_K, _V]) -> Mapping[_K, _V]:
    """A read-only view (the report is immutable)."""
    return MappingProxyType(mapping)


def _histogram(sizes: IntArray) -> dict[int, int]:
    """Number of classes per size (ascending): the HTML chart's data."""
    values, freq = np.unique(sizes, return_counts=True)
    return {int(v): int(f) for v, f in zip(values, freq, strict=True)}
