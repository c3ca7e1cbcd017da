"""Horizontal bar charts as plain geometry, drawn as inline SVG by the templates.

Each bar carries its value as text beside it, so a chart reads without colour, and every chart
is followed on its page by a table of the same figures (its text alternative).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pseudogate.register.disclosure import shown_number

__all__ = ["Bar", "BarChart", "bar_chart"]

_WIDTH = 640
_LABEL = 180  # room for the labels on the left
_ROW = 32
_BAR = 22


@dataclass(frozen=True)
class Bar:
    label: str
    value: int | str  # as shown (a disclosure-controlled count may be "<10")
    y: int
    width: int
    text_x: int


@dataclass(frozen=True)
class BarChart:
    width: int
    height: int
    label_width: int
    bar_height: int
    bars: tuple[Bar, ...]


_MAX_LABEL = 22  # characters that fit left of the bars; the table below has the full text


def _short(label: str) -> str:
    return label if len(label) <= _MAX_LABEL else label[: _MAX_LABEL - 1].rstrip() + "…"


def bar_chart(items: Sequence[tuple[str, int | str]]) -> BarChart:
    """Geometry of a bar per (label, shown value), longest bar at full width."""
    biggest = max((shown_number(v) for _, v in items), default=0) or 1
    room = _WIDTH - _LABEL - 60
    bars = []
    for i, (label, value) in enumerate(items):
        width = round(room * shown_number(value) / biggest)
        if shown_number(value) > 0:
            width = max(width, 2)
        bars.append(Bar(_short(label), value, 8 + i * _ROW, width, _LABEL + width + 6))
    return BarChart(_WIDTH, 16 + len(items) * _ROW, _LABEL, _BAR, tuple(bars))
