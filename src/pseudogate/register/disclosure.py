"""Disclosure control of the counts the register shows the public.

A count of people or records from 1 to 9 is shown as ``"<10"``; any other count is rounded to
the nearest 5 (halves up), and 0 stays 0. Counts of organisations, datasets, projects and
releases are public facts and shown exactly (they are not passed through here). The register,
its pages and ``register.json`` alike carry only the shown values, never the exact ones.
"""

from __future__ import annotations

from typing import Final

__all__ = ["FEW", "shown_count", "shown_number"]

#: What a count from 1 to 9 is shown as.
FEW: Final = "<10"


def shown_count(count: int) -> int | str:
    """The value shown for ``count``: 0, ``"<10"``, or ``count`` rounded to the nearest 5."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ValueError("a count is a non-negative integer")
    if count == 0:
        return 0
    if count < 10:
        return FEW
    return (count + 2) // 5 * 5


def shown_number(value: int | str) -> int:
    """A shown value as a number for drawing a chart bar (``"<10"`` is drawn as 5)."""
    return 5 if value == FEW else int(value)
