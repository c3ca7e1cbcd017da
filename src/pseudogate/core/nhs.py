"""The NHS number: which characters a provider may add, and the modulus-11 check digit.

Written once: normalisation, the extract scan, the audit log's name check, the Arrow column
path and the synthetic population all use these functions (the C accelerator has its own copy,
which the tests compare with this one). It imports nothing of pseudogate, so any module may
use it.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = [
    "HYPHENS",
    "SEPARATORS",
    "SPACES",
    "WEIGHTS",
    "check_digit",
    "has_valid_check_digit",
    "is_valid_nhs_number",
    "strip_separators",
    "valid_check_digits",
]

# "Spaces": every character for which str.isspace() is true (tabs, newlines, no-break and
# thin spaces that copy-paste brings). "Hyphens": the hyphen-minus and the Unicode hyphens and
# dashes that word processors substitute for it. Both lists are in docs/tokens.md.
SPACES = (
    "\t\n\v\f\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
HYPHENS = "-\u00ad\u2010\u2011\u2012\u2013\u2212\ufe63\uff0d"
SEPARATORS = SPACES + HYPHENS
_DROP_SEPARATORS = str.maketrans("", "", SEPARATORS)
#: Weights of the first nine digits: 10, 9, ..., 2.
WEIGHTS: tuple[int, ...] = tuple(range(10, 1, -1))
_WEIGHTS_ARRAY = np.array(WEIGHTS, dtype=np.int64)


def strip_separators(value: str) -> str:
    """``value`` without the spaces and hyphens a provider may write inside a number."""
    return value.translate(_DROP_SEPARATORS)


def check_digit(first_nine: str) -> int | None:
    """The check digit of nine ASCII digits, or None when none exists (remainder 10)."""
    total = sum(int(d) * w for d, w in zip(first_nine, WEIGHTS, strict=True))
    check = 11 - total % 11
    if check == 11:
        return 0
    return None if check == 10 else check


def has_valid_check_digit(digits: str) -> bool:
    """True when ten ASCII digits end in the right check digit."""
    return check_digit(digits[:9]) == int(digits[9])


def is_valid_nhs_number(value: str) -> bool:
    """True when ``value``, without spaces and hyphens, is ten digits with a valid check digit."""
    digits = strip_separators(value)
    return (
        len(digits) == 10 and digits.isascii() and digits.isdigit() and has_valid_check_digit(digits)
    )


def valid_check_digits(digits: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
    """The rule of :func:`check_digit`, vectorised: ``digits`` is an (n, 10) array of 0-9."""
    check = 11 - (digits[:, :9] @ _WEIGHTS_ARRAY) % 11
    check[check == 11] = 0
    ok: npt.NDArray[np.bool_] = check == digits[:, 9]  # a check of 10 never equals a digit
    return ok
