"""Patterns of direct identifiers in free text, shared by the extract scan for auditors
(:mod:`pseudogate.tools.verify_extract`) and the audit log's check of the names it records.

- NHS number: the text, without spaces and hyphens, is 10 digits with a valid check digit.
- UK postcode: a full postcode (outward code, optional space, inward code) anywhere, any case.
- Email address: anywhere in the text.
"""

from __future__ import annotations

import re

from pseudogate.core.normalise import is_valid_nhs_number

__all__ = [
    "EMAIL_IN_TEXT",
    "NHS_CANDIDATE",
    "POSTCODE_IN_TEXT",
    "SEPARATORS",
    "direct_identifier_in",
]

#: A full UK postcode anywhere in a text; match it case-blind.
POSTCODE_IN_TEXT = (
    r"(?<![A-Za-z0-9])(?:GIR ?0AA|[A-PR-UWYZ](?:[0-9]{1,2}|[A-HK-Y][0-9][0-9ABEHMNPRV-Y]?"
    r"|[0-9][A-HJKPS-UW]) ?[0-9][ABD-HJLNP-UW-Z]{2})(?![A-Za-z0-9])"
)
#: An email address anywhere in a text.
EMAIL_IN_TEXT = (
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9-]+)+"
)
#: What an NHS number looks like once SEPARATORS are removed (the check digit decides).
NHS_CANDIDATE = r"[0-9]{10}"
#: Characters people put inside NHS numbers.
SEPARATORS = r"[\s\-]"

_POSTCODE = re.compile(POSTCODE_IN_TEXT, re.IGNORECASE)
_EMAIL = re.compile(EMAIL_IN_TEXT)
_NHS = re.compile(NHS_CANDIDATE)
_SEPARATOR = re.compile(SEPARATORS)


def direct_identifier_in(text: str) -> str | None:
    """The kind of direct identifier ``text`` is or contains ("NHS number", "postcode",
    "email address"), or None. Never returns the identifier itself."""
    if _NHS.fullmatch(_SEPARATOR.sub("", text)) and is_valid_nhs_number(text):
        return "NHS number"
    if _POSTCODE.search(text):
        return "postcode"
    if _EMAIL.search(text):
        return "email address"
    return None
