"""How a project links records into people: ``exact`` or ``probabilistic`` (docs/linkage.md).

A :class:`Linkage` is a project's choice and, in an extract's manifest, the record of how its
``person`` column was made::

    {"method": "exact"}
    {"method": "probabilistic", "threshold": T, "encoding": "pg-fbf-v1"}

``exact`` links records holding the same NHS linkage token (the behaviour before issue 10);
``probabilistic`` clusters records on their identity encodings and NHS tokens, and a cluster is
one person when its pairs' match probability reaches the threshold ``T``.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Any

from pseudogate.core.errors import InvalidInput

__all__ = ["Linkage", "LinkageMethod", "parse_linkage"]


class LinkageMethod(enum.StrEnum):
    EXACT = "exact"
    PROBABILISTIC = "probabilistic"


_METHODS = ", ".join(m.value for m in LinkageMethod)


@dataclass(frozen=True, slots=True)
class Linkage:
    """A linkage method; ``threshold`` and ``encoding`` are set for ``probabilistic`` only."""

    method: LinkageMethod = LinkageMethod.EXACT
    threshold: float | None = None
    encoding: str | None = None

    def __post_init__(self) -> None:
        if self.method is LinkageMethod.EXACT:
            if self.threshold is not None or self.encoding is not None:
                raise InvalidInput("exact linkage has no threshold and no encoding")
        elif self.threshold is None or not _is_probability(self.threshold):
            raise InvalidInput(
                "the linkage threshold is a match probability strictly between 0 and 1"
            )
        elif not self.encoding:
            raise InvalidInput("probabilistic linkage names the encoding it compared")

    @property
    def probabilistic(self) -> bool:
        return self.method is LinkageMethod.PROBABILISTIC

    def to_json_dict(self) -> dict[str, Any]:
        """The manifest's ``linkage`` object (keys in this order)."""
        if self.method is LinkageMethod.EXACT:
            return {"method": self.method.value}
        return {"method": self.method.value, "threshold": self.threshold,
                "encoding": self.encoding}

    @classmethod
    def from_json_dict(cls, value: object) -> Linkage:
        """Check a received manifest's ``linkage`` object (:class:`InvalidInput` if malformed,
        naming the field only)."""
        bad = InvalidInput("manifest field 'linkage' is malformed")
        if not isinstance(value, dict) or not isinstance(value.get("method"), str):
            raise bad
        if value["method"] == LinkageMethod.EXACT.value and set(value) == {"method"}:
            return cls()
        if value["method"] != LinkageMethod.PROBABILISTIC.value or set(value) != {
            "method", "threshold", "encoding"
        }:
            raise bad
        threshold, encoding = value["threshold"], value["encoding"]
        if not _is_probability(threshold) or not isinstance(encoding, str) or not encoding:
            raise bad
        return cls(LinkageMethod.PROBABILISTIC, threshold, encoding)

    def describe(self) -> str:
        if self.method is LinkageMethod.EXACT:
            return "exact (same NHS linkage token)"
        return f"probabilistic ({self.encoding} encodings, threshold {self.threshold})"


def _is_probability(value: object) -> bool:
    return (
        not isinstance(value, bool)
        and isinstance(value, (int, float))
        and math.isfinite(value)
        and 0.0 < value < 1.0
    )


def parse_linkage(
    method: str | None, threshold: float | None, *, default_threshold: float, encoding: str
) -> Linkage:
    """A project's linkage from a request: ``method`` "" or None means exact; ``threshold``
    None (or 0, proto3's unset) means ``default_threshold`` for probabilistic, and is refused
    with exact."""
    name = method or LinkageMethod.EXACT.value
    try:
        chosen = LinkageMethod(name)
    except ValueError:
        raise InvalidInput(f"unknown linkage method; the methods are {_METHODS}") from None
    given = None if threshold in (None, 0) else threshold
    if chosen is LinkageMethod.EXACT:
        if given is not None:
            raise InvalidInput(
                "a linkage threshold applies to probabilistic linkage only; exact linkage "
                "links the same NHS linkage token"
            )
        return Linkage()
    value = default_threshold if given is None else given
    if not _is_probability(value):
        raise InvalidInput(
            "the linkage threshold is a match probability strictly between 0 and 1"
        )
    return Linkage(LinkageMethod.PROBABILISTIC, float(value), encoding)
