"""Which columns of an input hold identity fields and the NHS number (for ``pseudogate link``).

TEMPORARY. Issue 10 section 1 adds the column action ``identify`` (with a required ``field``)
to the policy parser, ``core/policy.py``; until that lands this strict reader takes what
linkage needs from a policy file: the ``identify`` columns and the column tokenised with kind
``nhs_number``. :func:`read_identity_policy` uses the real parser first (so it keeps working
once the parser knows ``identify``) and falls back to this reader only for a policy the
parser refuses *and* that has ``identify`` columns.

Errors name the policy file, the column (a policy's column names are the provider's, not a
person's data) and the problem, never a value of the input.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pseudogate.core.errors import ConfigurationError, shown
from pseudogate.core.identifiers import WITHHELD
from pseudogate.core.policy import MAX_POLICY_BYTES, load_bounded_yaml, load_policy

__all__ = ["IDENTITY_FIELDS", "IdentityColumns", "read_identity_policy"]

#: The identity fields of issue 10 (``core/identity.py``'s IdentityField values).
IDENTITY_FIELDS = ("given_name", "family_name", "date_of_birth", "sex", "postcode", "address")


@dataclass(frozen=True)
class IdentityColumns:
    """Input column per identity field, and the NHS column and its token domain (if any)."""

    name: str
    fields: dict[str, str]  # field -> column
    nhs_column: str | None
    nhs_domain: str | None

    @property
    def columns(self) -> tuple[str, ...]:
        named = list(self.fields.values())
        return (*named, self.nhs_column) if self.nhs_column else tuple(named)


def _from_parsed(path: Path) -> IdentityColumns:
    """From the real parser (raises ConfigurationError when it refuses the policy)."""
    policy = load_policy(path)
    fields: dict[str, str] = {}
    nhs: tuple[str | None, str | None] = (None, None)
    for rule in policy.columns:
        if rule.action.value == "identify":
            field = getattr(rule, "field", None)
            fields[str(getattr(field, "value", field))] = rule.name
        elif rule.action.value == "tokenise" and rule.kind is not None \
                and rule.kind.value == "nhs_number" and nhs[0] is None:
            nhs = (rule.name, rule.domain)
    return IdentityColumns(policy.name, fields, *nhs)


def _fail(path: Path, message: str) -> ConfigurationError:
    return ConfigurationError(f"policy {path}: {message}")


def _strict(path: Path) -> IdentityColumns:
    """The temporary reader: ``identify`` and NHS ``tokenise`` columns, strictly checked."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise _fail(path, f"cannot be read ({type(exc).__name__})") from None
    if len(raw) > MAX_POLICY_BYTES:
        raise _fail(path, f"larger than {MAX_POLICY_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _fail(path, "not UTF-8") from None
    doc: Any = load_bounded_yaml(text, origin=str(path), what="policy")
    if not isinstance(doc, dict) or not isinstance(doc.get("columns"), dict):
        # no identify columns can be read: the caller reports the real parser's error
        return IdentityColumns(path.stem, {}, None, None)
    name = doc.get("name")
    fields: dict[str, str] = {}
    nhs_column: str | None = None
    nhs_domain: str | None = None
    for column, rule in doc["columns"].items():
        if not isinstance(column, str) or not isinstance(rule, dict) or "action" not in rule:
            raise _fail(path, "every column is a mapping with an 'action' (a column is "
                              f"not: {shown(column)})")
        action = rule["action"]
        if action == "identify":
            if set(rule) != {"action", "field"}:
                raise _fail(path, f"column {shown(column)}: identify takes exactly 'field'")
            field = rule["field"]
            if field not in IDENTITY_FIELDS:
                raise _fail(path, f"column {shown(column)}: unknown field {shown(str(field))} "
                                  f"(known: {list(IDENTITY_FIELDS)})")
            if field in fields:
                raise _fail(path, f"field {field!r} appears twice (columns {shown(fields[field])} "
                                  f"and {shown(column)})")
            fields[field] = column
        elif action == "tokenise" and rule.get("kind") == "nhs_number" and nhs_column is None:
            nhs_column = column
            domain = rule.get("domain", "nhs_number")
            nhs_domain = domain if isinstance(domain, str) else None
    return IdentityColumns(str(name) if isinstance(name, str) and shown(name) != WITHHELD
                           else path.stem,
                           fields, nhs_column, nhs_domain)


def read_identity_policy(path: str | os.PathLike[str]) -> IdentityColumns:
    """The identity and NHS columns of a policy (see the module docstring)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigurationError(f"policy {p} does not exist")
    try:
        found = _from_parsed(p)
    except ConfigurationError as refused:
        found = _strict(p)
        if not found.fields:  # not a policy with identify columns: the parser's error stands
            raise refused from None
    if not found.fields and found.nhs_column is None:
        raise _fail(p, "names no identity field and no NHS number column: nothing to link on")
    return found
