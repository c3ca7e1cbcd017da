"""Approved research projects: which datasets, which extract policy, until when.

A project's extract policy names the joined columns (``person`` and ``<dataset>.<column>``);
it is validated against the datasets' latest schemas when the project is created and again at
every extract (a new version may have changed a schema).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from pseudogate.core.errors import InvalidInput
from pseudogate.core.policy import Action, Policy
from pseudogate.gateway.join import PERSON, JoinLayout
from pseudogate.store.catalog import ProjectRow

__all__ = ["ProjectRecord", "check_extract_policy", "parse_expiry"]


@dataclass(frozen=True, slots=True)
class ProjectRecord:
    """A registered project (what ``CreateProject`` answers with, and more)."""

    id: str
    researcher: str
    datasets: tuple[str, ...]
    domain: str
    policy_fingerprint: str
    project_key_id: str
    expires: date
    created_at: str
    linkage: str = "exact"
    linkage_threshold: float | None = None

    @classmethod
    def from_row(cls, row: ProjectRow) -> ProjectRecord:
        return cls(
            id=row.id,
            researcher=row.researcher,
            datasets=row.datasets,
            domain=row.domain,
            policy_fingerprint=row.policy_fingerprint,
            project_key_id=row.project_key_id,
            expires=date.fromisoformat(row.expires),
            created_at=row.created_at,
            linkage=row.linkage,
            linkage_threshold=row.linkage_threshold,
        )


def parse_expiry(value: date | str) -> date:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value) if len(value) == 10 else _bad_expiry()
    except (TypeError, ValueError):
        return _bad_expiry()


def _bad_expiry() -> date:
    raise InvalidInput("expiry must be a date written YYYY-MM-DD")


def check_extract_policy(policy: Policy, layout: JoinLayout) -> None:
    """Refuse an extract policy that does not fit the joined columns or the extract rules."""
    policy.check_input_columns(layout.header, names_are_known=True)
    if policy.privacy is None:
        raise InvalidInput(
            f"policy {policy.name!r} has no privacy section; an extract policy needs k "
            "(and optionally l and a suppression limit)"
        )
    person = policy.rule(PERSON)
    if person.action is not Action.KEEP or person.sensitive:
        raise InvalidInput(
            f"policy {policy.name!r}: column {PERSON!r} holds project tokens and must be "
            "'keep' (not sensitive)"
        )
    for rule in policy.columns:
        if rule.action is Action.IDENTIFY:
            raise InvalidInput(
                f"policy {policy.name!r}: column {rule.name!r} (line {rule.line}) is 'identify'; "
                "identity fields are for ingestion policies and never reach an extract"
            )
        if rule.action is Action.TOKENISE:
            raise InvalidInput(
                f"policy {policy.name!r}: column {rule.name!r} cannot be tokenised in an extract "
                "(stored identifiers are already tokens; extracts carry project tokens)"
            )
    first = layout.datasets[0]
    for name in policy.quasi_identifiers:
        if not name.startswith(first + "."):
            raise InvalidInput(
                f"policy {policy.name!r}: generalised column {name!r} must come from the "
                f"project's first dataset {first!r}"
            )
