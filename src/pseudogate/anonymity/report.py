"""The JSON risk and utility report of one anonymisation (fields in docs/anonymisation.md)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from pseudogate.anonymity.search import Problem, SearchOutcome
from pseudogate.policy import Policy

__all__ = ["build_report", "class_sizes"]


def class_sizes(problem: Problem, outcome: SearchOutcome) -> np.ndarray:
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
) -> dict[str, Any]:
    best = outcome.best
    privacy = policy.privacy
    assert privacy is not None
    rows_in = problem.rows
    rows_out = rows_in - best.suppressed
    sizes = class_sizes(problem, outcome)
    units = int(sizes.sum())  # records (rows or persons) released
    k = privacy.k
    by_size: dict[str, float] = {}
    for s in range(1, k + 5):
        in_size = int(sizes[sizes == s].sum())
        by_size[str(s)] = in_size / units if units else 0.0
    larger = int(sizes[sizes > k + 4].sum())
    frac = privacy.suppression_fraction
    return {
        "policy": policy.name,
        "policy_fingerprint": policy.fingerprint,
        "privacy": {
            "k": k,
            "l": privacy.l,
            "suppression_limit": f"{frac.numerator}/{frac.denominator}",
            "max_suppressed": problem.max_suppressed,
            "metric": privacy.metric,
            "counted_by": person_column or "rows",
        },
        "quasi_identifiers": list(qi_names),
        "sensitive_columns": list(policy.sensitive_columns),
        "levels": {name: int(level) for name, level in zip(qi_names, best.levels, strict=True)},
        "k_achieved": int(sizes.min()) if len(sizes) else None,
        "l_achieved": best.l_achieved,
        "rows_in": rows_in,
        "rows_out": rows_out,
        "suppressed": best.suppressed,
        "classes": len(sizes),
        "loss": best.loss,
        "loss_per_column": {name: value for name, value in
                            zip(qi_names, best.loss_per_column, strict=True)},
        "discernibility": best.discernibility,
        "prosecutor_risk": {
            "highest": 1.0 / int(sizes.min()) if len(sizes) else 0.0,
            "average": len(sizes) / units if units else 0.0,
        },
        "records_by_class_size": by_size,
        "records_in_larger_classes": larger / units if units else 0.0,
        "class_size_histogram": _histogram(sizes),
        "search": {
            "transformations": outcome.transformations,
            "evaluated": outcome.evaluated,
            "seconds": round(outcome.seconds, 6),
            "method": "exact" if outcome.exact else "heuristic",
            "optimal": outcome.exact,
        },
    }


def _histogram(sizes: np.ndarray) -> dict[str, int]:
    """Number of classes per size (size as text, ascending): the HTML chart's data."""
    values, freq = np.unique(sizes, return_counts=True)
    return {str(int(v)): int(f) for v, f in zip(values, freq, strict=True)}
