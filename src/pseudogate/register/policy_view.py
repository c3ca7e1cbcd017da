"""An extract policy as rows a person can read: each column and what happens to it, then the
privacy rules (k, l, suppression limit)."""

from __future__ import annotations

from dataclasses import dataclass

from pseudogate.core.hierarchy_types import HierarchySpec, HierarchyType
from pseudogate.core.names import PERSON_COLUMN
from pseudogate.core.policy import Action, ColumnRule, Policy

__all__ = ["PolicyRow", "policy_rows"]

_DATE_LEVELS = {
    "month": "month",
    "quarter": "quarter",
    "year": "year",
    "5y": "5-year band",
    "10y": "10-year band",
}
_POSTCODE_LEVELS = {
    "sector": "sector (e.g. LL11 2)",
    "district": "district (e.g. LL11)",
    "area": "area (e.g. LL)",
}


@dataclass(frozen=True)
class PolicyRow:
    """One line of the readable policy: a dataset and column (or a rule), and what it means."""

    dataset: str
    column: str
    treatment: str

    def to_json(self) -> dict[str, str]:
        return {"dataset": self.dataset, "column": self.column, "treatment": self.treatment}


def policy_rows(policy: Policy) -> tuple[PolicyRow, ...]:
    """The readable rows of ``policy``: its columns in order, then its privacy rules."""
    rows = [_column_row(rule) for rule in policy.columns]
    privacy = policy.privacy
    if privacy is not None:
        rows.append(PolicyRow("", "k", f"k = {privacy.k}: every combination of the generalised "
                              f"values is shared by at least {privacy.k} records"))
        if privacy.l is not None:
            rows.append(PolicyRow("", "l", f"l = {privacy.l}: each such group has at least "
                                  f"{privacy.l} different values of every sensitive column"))
        limit = float(privacy.suppression_limit) * 100
        rows.append(PolicyRow("", "suppression limit",
                              f"at most {limit:g}% of records may be withheld"))
    return tuple(rows)


def _split(name: str) -> tuple[str, str]:
    if name == PERSON_COLUMN:
        return "", PERSON_COLUMN
    dataset, _, column = name.partition(".")
    return (dataset, column) if column else ("", name)


def _column_row(rule: ColumnRule) -> PolicyRow:
    dataset, column = _split(rule.name)
    return PolicyRow(dataset, column.replace("_", " "), _treatment(rule))


def _treatment(rule: ColumnRule) -> str:
    if rule.name == PERSON_COLUMN:
        return "a pseudonym for the person, different in every project (cannot be joined " \
               "with another project's data)"
    if rule.action is Action.DROP:
        return "removed"
    if rule.action is Action.KEEP:
        return "kept, sensitive (l-diversity applies)" if rule.sensitive else "kept"
    if rule.action is Action.GENERALISE and rule.hierarchy is not None:
        return "generalised as far as k needs, to one of: " + _levels(rule.hierarchy)
    if rule.action is Action.TOKENISE:
        return "replaced by a token"
    return str(rule.action.value)


def _levels(spec: HierarchySpec) -> str:
    if spec.type is HierarchyType.DATE:
        levels = [_DATE_LEVELS.get(level, level) for level in spec.levels]
    elif spec.type is HierarchyType.POSTCODE:
        levels = [_POSTCODE_LEVELS.get(level, level) for level in spec.levels]
    elif spec.type is HierarchyType.INTERVAL:
        levels = [f"bands of {w}" for w in spec.widths]
    elif spec.type is HierarchyType.MASK:
        levels = [f"first {n} character{'s' if n != 1 else ''}" for n in spec.keep]
    elif spec.type is HierarchyType.TREE:
        levels = [f"the groups of the hierarchy file {spec.file}"]
    else:
        levels = []
    return ", ".join(["the value itself", *levels, "withheld (*)"])
