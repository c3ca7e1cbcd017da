"""Strict normalisation of direct identifiers, by kind, before they are tokenised.

The same person must give the same normalised string whichever provider typed it, so tokens
link. Invalid values raise :class:`InvalidValue` carrying a reason code, never the value.
"""

from __future__ import annotations

import datetime as _dt
import enum
import re
import unicodedata
from collections.abc import Callable, Sequence

import numpy as np

from pseudogate.core._accel import fastmac
from pseudogate.core.errors import InvalidInput
from pseudogate.core.nhs import (
    HYPHENS,
    SEPARATORS,
    SPACES,
    has_valid_check_digit,
    is_valid_nhs_number,
    valid_check_digits,
)

__all__ = [
    "HYPHENS",
    "SPACES",
    "InvalidValue",
    "Kind",
    "Reason",
    "is_valid_nhs_number",
    "normalise",
    "normalise_many",
    "normaliser",
]


class Kind(enum.StrEnum):
    """The kinds of direct identifier the gateway knows how to normalise."""

    NHS_NUMBER = "nhs_number"
    POSTCODE = "postcode"
    DATE = "date"
    NAME = "name"
    EMAIL = "email"
    TEXT = "text"


class Reason(enum.StrEnum):
    """Reason codes for invalid values (stable: they appear in APIs and reports)."""

    EMPTY = "empty"
    BAD_FORMAT = "bad_format"
    INVALID_CHECK_DIGIT = "invalid_check_digit"
    INVALID_DATE = "invalid_date"
    NOT_TEXT = "not_text"


class InvalidValue(InvalidInput):
    """A value that cannot be normalised. Carries only a reason code."""

    def __init__(self, reason: Reason) -> None:
        self.reason = reason
        super().__init__(f"invalid value: {reason}")


_NHS_DROP = str.maketrans("", "", SEPARATORS)
_POSTCODE_DROP = str.maketrans("", "", SPACES)

# The UK postcode format (GOV.UK Bulk Data Transfer guidance), after removing spaces.
_POSTCODE_RE = re.compile(
    r"(GIR0AA|[A-PR-UWYZ](?:[0-9]{1,2}|[A-HK-Y][0-9][0-9ABEHMNPRV-Y]?|[0-9][A-HJKPS-UW])"
    r"[0-9][ABD-HJLNP-UW-Z]{2})"
)
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _nhs_number(value: str) -> str:
    digits = value.translate(_NHS_DROP)
    if not digits:
        raise InvalidValue(Reason.EMPTY)
    if len(digits) != 10 or not (digits.isascii() and digits.isdigit()):
        raise InvalidValue(Reason.BAD_FORMAT)
    if not has_valid_check_digit(digits):
        raise InvalidValue(Reason.INVALID_CHECK_DIGIT)
    return digits


def _postcode(value: str) -> str:
    compact = value.translate(_POSTCODE_DROP)
    if not compact:
        raise InvalidValue(Reason.EMPTY)
    # ASCII is checked before upper-casing: "ſ".upper() == "S" must not pass.
    if not compact.isascii():
        raise InvalidValue(Reason.BAD_FORMAT)
    compact = compact.upper()
    if _POSTCODE_RE.fullmatch(compact) is None:
        raise InvalidValue(Reason.BAD_FORMAT)
    return f"{compact[:-3]} {compact[-3:]}"


def _date(value: str) -> str:
    text = value.strip()
    if not text:
        raise InvalidValue(Reason.EMPTY)
    if not text.isascii() or _DATE_RE.fullmatch(text) is None:
        raise InvalidValue(Reason.BAD_FORMAT)
    try:
        _dt.date.fromisoformat(text)
    except ValueError:
        raise InvalidValue(Reason.INVALID_DATE) from None
    return text


def _is_letter(ch: str) -> bool:
    return unicodedata.category(ch).startswith("L")


def _name(value: str) -> str:
    decomposed = unicodedata.normalize("NFKD", value)
    stripped = "".join(ch for ch in decomposed if not unicodedata.category(ch).startswith("M"))
    folded = stripped.casefold()
    out: list[str] = []
    gap = False
    for ch in folded:
        if _is_letter(ch):
            if gap and out:
                out.append(" ")
            out.append(ch)
            gap = False
        else:
            gap = True
    if not out:
        raise InvalidValue(Reason.EMPTY)
    return "".join(out)


def _require_utf8(text: str) -> None:
    """Lone surrogates cannot be UTF-8 encoded (nor tokenised): refuse them as bad_format."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidValue(Reason.BAD_FORMAT) from None


def _email(value: str) -> str:
    text = value.strip().lower()
    if not text:
        raise InvalidValue(Reason.EMPTY)
    _require_utf8(text)
    local, at, domain = text.partition("@")
    if not at or not local or not domain or "@" in domain:
        raise InvalidValue(Reason.BAD_FORMAT)
    return text


def _text(value: str) -> str:
    text = unicodedata.normalize("NFC", value).strip()
    if not text:
        raise InvalidValue(Reason.EMPTY)
    _require_utf8(text)
    return text


_NORMALISERS: dict[Kind, Callable[[str], str]] = {
    Kind.NHS_NUMBER: _nhs_number,
    Kind.POSTCODE: _postcode,
    Kind.DATE: _date,
    Kind.NAME: _name,
    Kind.EMAIL: _email,
    Kind.TEXT: _text,
}


def normaliser(kind: Kind | str) -> Callable[[str], str]:
    """The normalising function for ``kind`` (raises :class:`InvalidValue`)."""
    try:
        return _NORMALISERS[Kind(kind)]
    except ValueError:
        raise InvalidInput(f"unknown identifier kind {str(kind)!r}") from None


def normalise(kind: Kind | str, value: str) -> str:
    """Normalise one value of ``kind``; raises :class:`InvalidValue` with a reason code."""
    if not isinstance(value, str):
        raise InvalidValue(Reason.NOT_TEXT)
    return normaliser(kind)(value)


def normalise_many(
    kind: Kind | str, values: Sequence[str]
) -> tuple[list[str | None], list[tuple[int, Reason]]]:
    """Normalise a batch: (normalised values with None where invalid, [(index, reason)]).

    NHS numbers take a vectorised path (the bulk case); other kinds go value by value.
    """
    kind = Kind(kind)
    if kind is Kind.NHS_NUMBER:
        return _nhs_many(values)
    fn = _NORMALISERS[kind]
    out: list[str | None] = []
    errors: list[tuple[int, Reason]] = []
    for i, v in enumerate(values):
        try:
            if not isinstance(v, str):
                raise InvalidValue(Reason.NOT_TEXT)
            out.append(fn(v))
        except InvalidValue as exc:
            out.append(None)
            errors.append((i, exc.reason))
    return out, errors


# Codes returned by the C accelerator's nhs_normalise (5: beyond Latin-1, decided here).
_FAST_NHS_REASONS = {
    1: Reason.EMPTY,
    2: Reason.BAD_FORMAT,
    3: Reason.INVALID_CHECK_DIGIT,
    4: Reason.NOT_TEXT,
}
_FAST_NHS_DEFER = 5


def _nhs_many(values: Sequence[str]) -> tuple[list[str | None], list[tuple[int, Reason]]]:
    if fastmac is None:
        return _nhs_many_python(values)
    if not isinstance(values, list | tuple):
        values = list(values)
    out, problems = fastmac.nhs_normalise(values)
    errors: list[tuple[int, Reason]] = []
    for i, code in problems:
        if code == _FAST_NHS_DEFER:
            try:
                out[i] = _nhs_number(values[i])
            except InvalidValue as exc:
                errors.append((i, exc.reason))
        else:
            errors.append((i, _FAST_NHS_REASONS[code]))
    return out, errors


def _nhs_many_python(values: Sequence[str]) -> tuple[list[str | None], list[tuple[int, Reason]]]:
    drop = _NHS_DROP
    cleaned: list[str | None] = [v.translate(drop) if isinstance(v, str) else None for v in values]
    errors: list[tuple[int, Reason]] = []
    ok_idx: list[int] = []
    ok_values: list[str] = []
    for i, d in enumerate(cleaned):
        if d is not None and len(d) == 10 and d.isdigit() and d.isascii():
            ok_idx.append(i)
            ok_values.append(d)
        else:
            if d is None:
                errors.append((i, Reason.NOT_TEXT))
            else:
                errors.append((i, Reason.EMPTY if not d else Reason.BAD_FORMAT))
            cleaned[i] = None
    if ok_idx:
        blob = "".join(ok_values).encode("ascii")
        digits = (np.frombuffer(blob, dtype=np.uint8).reshape(-1, 10) - 48).astype(np.int64)
        bad = np.flatnonzero(~valid_check_digits(digits))
        for j in bad.tolist():
            i = ok_idx[j]
            cleaned[i] = None
            errors.append((i, Reason.INVALID_CHECK_DIGIT))
        if len(bad):
            errors.sort()
    return cleaned, errors
