"""Patterns of direct identifiers in free text, shared by the extract scan for auditors
(:mod:`pseudogate.tools.verify_extract`) and the audit log's check of the names it records.

- NHS number: the text, without spaces and hyphens, is 10 digits with a valid check digit.
- UK postcode: a full postcode (outward code, optional space, inward code) anywhere, any case.
- Email address: anywhere in the text.
"""

from __future__ import annotations

import re

from pseudogate.core.nhs import is_valid_nhs_number

__all__ = [
    "EMAIL_IN_TEXT",
    "NHS_CANDIDATE",
    "POSTCODE_IN_TEXT",
    "SEPARATORS",
    "WITHHELD",
    "contains_identifier",
    "direct_identifier_in",
    "redact",
]

#: What stands in for a direct identifier removed from a message.
WITHHELD = "(withheld)"

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
#: An NHS number written with or without separators inside a longer text.
_NHS_IN_TEXT = re.compile(r"(?<![0-9])[0-9](?:[ \-]?[0-9]){9}(?![0-9])")


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


def redact(text: str) -> str:
    """``text`` with every NHS number, postcode and email address in it replaced by WITHHELD.

    A last line of defence for messages (errors are built from rows, columns and reasons, but
    a name a caller typed may still be quoted): a false alarm costs a word, a leak a person.
    """
    text = _EMAIL.sub(WITHHELD, text)
    text = _POSTCODE.sub(WITHHELD, text)
    return _NHS_IN_TEXT.sub(
        lambda m: WITHHELD if is_valid_nhs_number(_SEPARATOR.sub("", m.group())) else m.group(),
        text,
    )


def contains_identifier(text: str) -> bool:
    """Whether ``text`` is or contains an NHS number, postcode or email address (a name a
    caller chose, such as "gp_9434765919", must not carry one into listings and messages)."""
    return direct_identifier_in(text) is not None or redact(text) != text
