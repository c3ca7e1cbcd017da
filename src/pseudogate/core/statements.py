"""A project's public statements: its title, purpose, legal basis and public benefit (issue 11).

Every new project states all four; the public register publishes them as written, and the
project's creation audit event records them. They are public text, so they are checked like
names a caller chose: each is required, has a length limit, holds printable text only (line
breaks allowed in the longer ones) and is refused when it is or contains an NHS number, a
postcode or an email address. Refusals name the statement, never the value.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass

from pseudogate.core.errors import InvalidInput
from pseudogate.core.identifiers import contains_identifier

__all__ = [
    "STATEMENT_FIELDS",
    "STATEMENT_LIMITS",
    "ProjectStatements",
    "check_statement",
    "statement_text_ok",
]

#: The statements, in the order they are shown.
STATEMENT_FIELDS: tuple[str, ...] = ("title", "purpose", "legal_basis", "public_benefit")

#: Longest accepted value of each statement, in characters (after trimming).
STATEMENT_LIMITS: Mapping[str, int] = {
    "title": 200,
    "purpose": 2000,
    "legal_basis": 500,
    "public_benefit": 2000,
}

#: Statements that may span lines.
_MULTILINE = frozenset({"purpose", "public_benefit"})

#: Bidirectional overrides and isolates: they make published text read differently from what
#: it holds.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _describe(name: str) -> str:
    return name.replace("_", " ")


def statement_text_ok(name: str, value: object) -> bool:
    """Whether ``value`` is an acceptable ``name`` statement as stored (trimmed, non-empty,
    within its limit, printable, no identifier). The audit verifier uses it too."""
    if name not in STATEMENT_LIMITS or not isinstance(value, str):
        return False
    return value == value.strip() and _problem(name, value) is None


def _problem(name: str, value: str) -> str | None:
    label = _describe(name)
    if not value:
        return f"the project's {label} is required"
    limit = STATEMENT_LIMITS[name]
    if len(value) > limit:
        return f"the project's {label} is longer than {limit} characters"
    for char in value:
        if char == "\n" and name in _MULTILINE:
            continue
        if char in _BIDI_CONTROLS or unicodedata.category(char) in ("Cc", "Cs", "Co", "Zl", "Zp"):
            return (
                f"the project's {label} holds a control character"
                + (" (line breaks are allowed in the purpose and public benefit only)"
                   if char in "\r\n\u2028\u2029" else "")
            )
    if contains_identifier(value):
        return (
            f"the project's {label} contains an NHS number, a postcode or an email address: it "
            "is published on the public register, so it must not"
        )
    return None


def check_statement(name: str, value: object, *, field: str | None = None) -> str:
    """``value`` trimmed if it is an acceptable ``name`` statement, else InvalidInput naming
    ``field`` (default: the statement's name), never the value."""
    if name not in STATEMENT_LIMITS:
        raise ValueError(f"unknown project statement {name!r}")
    text = value.strip() if isinstance(value, str) else ""
    problem = _problem(name, text)
    if problem is not None:
        raise InvalidInput(f"{field or name}: {problem}")
    return text


@dataclass(frozen=True, slots=True)
class ProjectStatements:
    """The four public statements of a project, checked."""

    title: str
    purpose: str
    legal_basis: str
    public_benefit: str

    @classmethod
    def checked(
        cls, *, title: object, purpose: object, legal_basis: object, public_benefit: object
    ) -> ProjectStatements:
        """Each statement checked (:func:`check_statement`), the first missing one named."""
        return cls(
            title=check_statement("title", title),
            purpose=check_statement("purpose", purpose),
            legal_basis=check_statement("legal_basis", legal_basis),
            public_benefit=check_statement("public_benefit", public_benefit),
        )

    def as_dict(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in STATEMENT_FIELDS}
