"""The library entry point: one call from a table and a policy to a k-anonymous table + report."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from pseudogate.anonymity.arrays import IntArray
from pseudogate.anonymity.grouping import dense_ids
from pseudogate.anonymity.hierarchies import ColumnHierarchy, build_hierarchy
from pseudogate.anonymity.report import AnonymisationReport, build_report
from pseudogate.anonymity.search import search
from pseudogate.anonymity.transformation import Problem
from pseudogate.core.columns import tokenise_series
from pseudogate.core.errors import InvalidInput, RowError, RowErrors
from pseudogate.core.keyring import Keyring
from pseudogate.core.normalise import Kind
from pseudogate.core.policy import Action, Policy

__all__ = ["AnonymisationResult", "anonymise"]



@dataclass(frozen=True)
class AnonymisationResult:
    """The anonymised table (input column order, dropped columns gone) and the report
    (``report.to_json()`` is the JSON report)."""

    table: pd.DataFrame
    report: AnonymisationReport


def _as_text(column: pd.Series) -> pd.Series:
    """All cells are text (CSV read with dtype=str); anything else is refused, not guessed."""
    if column.dtype == object and (
            len(column) == 0 or pd.api.types.infer_dtype(column, skipna=False) == "string"):
        return column  # every cell is a str (checked in C, not value by value)
    if pd.api.types.is_string_dtype(column) and not column.isna().any():
        return column.astype(object)
    raise InvalidInput(f"column {column.name!r} holds non-text cells (read CSVs with dtype=str, "
                       "keep_default_na=False)")


def _tokenise(values: pd.Series, rule_kind: Kind, domain: str, keyring: Keyring, column: str,
              errors: list[RowError]) -> NDArray[np.object_] | None:
    """The column's tokens, or None with its first 1,000 invalid rows (numbered from 1) added to
    ``errors``."""
    done = tokenise_series(values, kind=rule_kind, tokeniser=keyring.linkage_tokeniser(domain))
    if done.errors:
        errors.extend(RowError(row=r + 1, reason=reason, column=column)
                      for r, reason in done.errors[:1000])
        return None
    return done.tokens


def anonymise(
    table: pd.DataFrame,
    policy: Policy,
    *,
    keyring: Keyring | None = None,
    person_column: str | None = None,
    progress: Callable[[str, float], None] | None = None,
) -> AnonymisationResult:
    """Tokenise, generalise to the optimal k-anonymous transformation, suppress, and report.

    With ``person_column`` (a ``keep`` column), k and l count distinct values of that column
    per class instead of rows: one person with many rows still counts once.
    """
    privacy = policy.privacy
    if privacy is None:
        raise InvalidInput(f"policy {policy.name!r} has no privacy section: nothing to anonymise "
                           "against")
    columns = [str(c) for c in table.columns]
    policy.check_input_columns(columns)
    for rule in policy.columns:
        if rule.action is Action.IDENTIFY:
            # Identity values are only ever encoded for linkage, never output (issue 10).
            raise InvalidInput(f"policy {policy.name!r}: column {rule.name!r} (line {rule.line}) "
                               "is 'identify'; identity fields are for ingestion policies: drop "
                               "the column to anonymise")
    if person_column is not None:
        rule = policy.rule(person_column)
        if rule.action is not Action.KEEP:
            raise InvalidInput(f"person column {person_column!r} must be a 'keep' column")
    if policy.tokenised_columns and keyring is None:
        raise InvalidInput(f"policy {policy.name!r} tokenises columns but no keyring was given")
    n = len(table)
    text = {c: _as_text(table[c]) for c in columns}
    report_progress = progress or (lambda _stage, _fraction: None)
    report_progress("encode", 0.0)

    errors: list[RowError] = []
    tokenised: dict[str, NDArray[np.object_]] = {}
    hierarchies: list[ColumnHierarchy] = []
    for rule in policy.columns:
        if rule.action is Action.TOKENISE:
            assert keyring is not None and rule.kind is not None and rule.domain is not None
            got = _tokenise(text[rule.name], rule.kind, rule.domain, keyring, rule.name, errors)
            if got is not None:
                tokenised[rule.name] = got
        elif rule.action is Action.GENERALISE:
            assert rule.hierarchy is not None
            h = build_hierarchy(rule.hierarchy, text[rule.name], column=rule.name,
                                files=dict(policy.files), errors=errors)
            if h is not None:
                hierarchies.append(h)
    if errors:
        errors.sort(key=lambda e: (e.row, e.column))
        raise RowErrors(errors, context="input")
    report_progress("encode", 0.5)

    # The base table: distinct combinations of QI leaves (+ sensitive / person codes).
    diversity_codes: list[tuple[IntArray, int]] = []
    for name in policy.sensitive_columns:
        codes, uniq = pd.factorize(text[name], sort=False)
        diversity_codes.append((codes.astype(np.int64), len(uniq)))
    person_codes: tuple[IntArray, int] | None = None
    if person_column is not None:
        codes, uniq = pd.factorize(text[person_column], sort=False)
        person_codes = (codes.astype(np.int64), len(uniq))
    parts = [(h.codes, len(h.up[0])) for h in hierarchies] + diversity_codes
    if person_codes is not None:
        parts.append(person_codes)
    base_of_row, m = dense_ids(parts, n)
    first = np.full(m, -1, dtype=np.int64)
    first[base_of_row[::-1]] = np.arange(n - 1, -1, -1)
    counts = np.bincount(base_of_row, minlength=m).astype(np.int64)
    problem = Problem(
        heights=tuple(h.height for h in hierarchies),
        leaf_codes=[h.codes[first] for h in hierarchies],
        counts=counts,
        up=[h.up for h in hierarchies],
        cards=[tuple(len(lab) for lab in h.labels) for h in hierarchies],
        cover=[h.cover for h in hierarchies],
        leaves=tuple(h.leaves for h in hierarchies),
        k=privacy.k,
        l=privacy.l,
        max_suppressed=privacy.max_suppressed(n),
        metric=privacy.metric,
        diversity=[(c[first], card) for c, card in diversity_codes],
        persons=(person_codes[0][first], person_codes[1]) if person_codes is not None else None,
    )
    report_progress("encode", 1.0)
    outcome = search(problem, progress=progress)
    best = outcome.best

    report_progress("output", 0.0)
    assert best.class_of_row is not None and best.kept_class is not None
    kept_rows = best.kept_class[best.class_of_row[base_of_row]]
    out: dict[str, Any] = {}
    by_name = {h.column: (i, h) for i, h in enumerate(hierarchies)}
    for name in columns:
        rule = policy.rule(name)
        if rule.action is Action.DROP:
            continue
        if rule.action is Action.TOKENISE:
            out[name] = tokenised[name][kept_rows]
        elif rule.action is Action.GENERALISE:
            i, h = by_name[name]
            level = best.levels[i]
            labels = np.asarray(h.labels[level], dtype=object)
            out[name] = labels[h.up[level][h.codes[kept_rows]]] if n else labels[:0]
        else:
            out[name] = text[name].to_numpy(dtype=object)[kept_rows]
    result_table = pd.DataFrame(out, columns=list(out), dtype=object)
    report = build_report(policy=policy, problem=problem, outcome=outcome,
                          qi_names=[h.column for h in hierarchies], person_column=person_column)
    report_progress("output", 1.0)
    return AnonymisationResult(table=result_table, report=report)
