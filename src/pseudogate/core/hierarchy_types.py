"""The generalisation hierarchy types: one small class per type, listed in one table.

Each type (:data:`HIERARCHY_TYPES`, keyed by :class:`HierarchyType`) validates its policy
parameters, describes itself in the policy fingerprint, and builds its levels over the distinct
values of a column. It reads its parameters through a :class:`ParamReader`, which the policy
parser implements over the YAML (so error messages name the policy line), and it returns its
levels as plain text (:class:`Levels`); ``pseudogate.anonymity.hierarchies`` encodes them as
integer codes. Adding a type means adding a class and a row to the table, nothing else.
"""

from __future__ import annotations

import datetime as _dt
import enum
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Protocol

from pseudogate.core.errors import ConfigurationError
from pseudogate.core.normalise import InvalidValue, Kind, normalise

__all__ = [
    "DATE_LEVELS",
    "HIERARCHY_TYPES",
    "POSTCODE_LEVELS",
    "TOP",
    "DateHierarchy",
    "GeneralisationHierarchy",
    "HierarchySpec",
    "HierarchyType",
    "IntervalHierarchy",
    "Levels",
    "MaskHierarchy",
    "ParamReader",
    "PostcodeHierarchy",
    "SuppressHierarchy",
    "TreeHierarchy",
    "Unplaceable",
]

#: The top label of every built-in type.
TOP = "*"
#: Date levels from finest to coarsest; a policy lists a subset in this order.
DATE_LEVELS: tuple[str, ...] = ("month", "quarter", "year", "5y", "10y")
#: Postcode levels from finest to coarsest; a policy lists a subset in this order.
POSTCODE_LEVELS: tuple[str, ...] = ("sector", "district", "area")


class HierarchyType(enum.StrEnum):
    """The generalisation hierarchies a `generalise` column can use."""

    INTERVAL = "interval"
    DATE = "date"
    POSTCODE = "postcode"
    MASK = "mask"
    TREE = "tree"
    SUPPRESS = "suppress"


@dataclass(frozen=True)
class HierarchySpec:
    """A hierarchy as the policy states it (built into value mappings by pseudogate.anonymity).

    Only the fields of its type are set: ``widths`` (interval), ``levels`` (date, postcode),
    ``keep`` (mask), ``file`` (tree: the path as written in the policy).
    """

    type: HierarchyType
    widths: tuple[int, ...] = ()
    levels: tuple[str, ...] = ()
    keep: tuple[int, ...] = ()
    file: str | None = None

    def canonical(self) -> dict[str, object]:
        """The hierarchy in the policy fingerprint's canonical JSON (docs/policy.md)."""
        return HIERARCHY_TYPES[self.type].describe(self)


class ParamReader(Protocol):
    """A hierarchy's parameters in the policy, read and checked where they were written.

    Every method raises :class:`ConfigurationError` naming the policy line; a required key
    that is absent is refused as "<type> needs '<key>'".
    """

    def has(self, key: str) -> bool:
        """Whether the policy gives ``key``."""
        ...

    def int_list(self, key: str, *, minimum: int) -> tuple[int, ...]:
        """A non-empty list of whole numbers, each at least ``minimum``."""
        ...

    def ordered_subset(self, key: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
        """A non-empty list of ``allowed`` names, in their order, without repeats."""
        ...

    def text(self, key: str) -> str:
        """Non-empty text."""
        ...

    def error(self, key: str, message: str) -> ConfigurationError:
        """An error located at ``key``'s value: "<column> hierarchy: <message>"."""
        ...


class Unplaceable(Exception):
    """A value the hierarchy cannot place; carries only a reason code, never the value."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Levels:
    """A hierarchy over the distinct values of one column, as text (before integer encoding).

    ``rows`` are the hierarchy's leaves, each with its label at every level (level 0 first);
    a tree file may repeat a row, and each repeat counts as a leaf (as in ARX). ``leaf_labels``
    gives, per distinct input value (in the order given), the level-0 label it is released
    as. ``invalid`` maps the position of each value the hierarchy cannot place to a reason
    code; when it is not empty the other fields are meaningless.
    """

    rows: Sequence[Sequence[str]]
    leaf_labels: Sequence[str]
    height: int
    invalid: Mapping[int, str] = field(default_factory=dict)


class GeneralisationHierarchy(Protocol):
    """One hierarchy type: validate its parameters, describe itself, build its levels."""

    type: ClassVar[HierarchyType]
    #: The keys its policy mapping may hold (``type`` included).
    keys: ClassVar[frozenset[str]]

    def parse(self, params: ParamReader) -> HierarchySpec:
        """Validate the policy's parameters (fail closed) into a spec."""
        ...

    def describe(self, spec: HierarchySpec) -> dict[str, object]:
        """The spec in the fingerprint's canonical JSON (every field present, defaults filled)."""
        ...

    def files(self, spec: HierarchySpec) -> tuple[str, ...]:
        """Paths of the hierarchy files it reads (relative to the policy), if any."""
        ...

    def check_files(self, spec: HierarchySpec, files: Mapping[str, bytes], *, column: str) -> None:
        """Validate its files when the policy is loaded (``policy check`` refuses bad ones)."""
        ...

    def labels(self, spec: HierarchySpec, value: str) -> list[str]:
        """A placed value's label at every level (types whose levels come from a file raise)."""
        ...

    def levels(self, spec: HierarchySpec, values: Sequence[str], *,
               files: Mapping[str, bytes], column: str) -> Levels:
        """The levels over ``values`` (distinct raw input values)."""
        ...


# -- types whose labels are computed value by value ----------------------------------------------


class _ValueHierarchy:
    """Base of the built-in types: level 0 is the placed (normalised) value, the top is ``*``."""

    type: ClassVar[HierarchyType]
    keys: ClassVar[frozenset[str]]

    def files(self, spec: HierarchySpec) -> tuple[str, ...]:
        return ()

    def check_files(self, spec: HierarchySpec, files: Mapping[str, bytes], *, column: str) -> None:
        return None

    def place(self, value: str) -> str:
        """What level 0 releases (raises :class:`Unplaceable`); values as given by default."""
        return value

    def height(self, spec: HierarchySpec) -> int:
        """Number of levels, counting level 0 and the top."""
        raise NotImplementedError

    def above(self, spec: HierarchySpec, value: str) -> list[str]:
        """The labels strictly between level 0 and the top."""
        raise NotImplementedError

    def labels(self, spec: HierarchySpec, value: str) -> list[str]:
        return [value, *self.above(spec, value), TOP]

    def levels(self, spec: HierarchySpec, values: Sequence[str], *,
               files: Mapping[str, bytes], column: str) -> Levels:
        placed: list[str] = []
        invalid: dict[int, str] = {}
        for i, raw in enumerate(values):
            try:
                placed.append(self.place(raw))
            except Unplaceable as exc:
                invalid[i] = exc.reason
                placed.append("")
        if invalid:
            return Levels(rows=(), leaf_labels=(), height=self.height(spec), invalid=invalid)
        # Leaves are the distinct placed values present in the input, in order of appearance.
        leaves = dict.fromkeys(placed)
        return Levels(rows=[self.labels(spec, v) for v in leaves], leaf_labels=placed,
                      height=self.height(spec))


class IntervalHierarchy(_ValueHierarchy):
    """Integers grouped into intervals of growing widths (each a multiple of the one before)."""

    type = HierarchyType.INTERVAL
    keys = frozenset({"type", "widths"})

    def parse(self, params: ParamReader) -> HierarchySpec:
        widths = params.int_list("widths", minimum=1)
        for before, after in itertools.pairwise(widths):
            if after <= before or after % before:
                raise params.error("widths", f"each width must be a larger multiple of the one "
                                             f"before ({after} after {before} is not)")
        return HierarchySpec(self.type, widths=widths)

    def describe(self, spec: HierarchySpec) -> dict[str, object]:
        return {"type": self.type.value, "widths": list(spec.widths)}

    def place(self, value: str) -> str:
        text = value.strip()
        body = text[1:] if text[:1] in "+-" else text
        if not body:
            raise Unplaceable("empty" if not text else "not_an_integer")
        if not (body.isascii() and body.isdigit()):
            raise Unplaceable("not_an_integer")
        return value

    def height(self, spec: HierarchySpec) -> int:
        return len(spec.widths) + 2

    def above(self, spec: HierarchySpec, value: str) -> list[str]:
        v = int(value)
        out = []
        for w in spec.widths:
            lo = (v // w) * w
            out.append(f"{lo}-{lo + w - 1}")
        return out


class DateHierarchy(_ValueHierarchy):
    """Dates (normalised to YYYY-MM-DD) by month, quarter, year, 5 and 10 years."""

    type = HierarchyType.DATE
    keys = frozenset({"type", "levels"})

    def parse(self, params: ParamReader) -> HierarchySpec:
        return HierarchySpec(self.type, levels=params.ordered_subset("levels", DATE_LEVELS))

    def describe(self, spec: HierarchySpec) -> dict[str, object]:
        return {"type": self.type.value, "levels": list(spec.levels)}

    def place(self, value: str) -> str:
        try:
            return normalise(Kind.DATE, value)
        except InvalidValue as exc:
            raise Unplaceable(str(exc.reason)) from None

    def height(self, spec: HierarchySpec) -> int:
        return len(spec.levels) + 2

    def above(self, spec: HierarchySpec, value: str) -> list[str]:
        d = _dt.date.fromisoformat(value)
        return [_date_label(d, level) for level in spec.levels]


def _date_label(d: _dt.date, level: str) -> str:
    if level == "month":
        return f"{d.year:04d}-{d.month:02d}"
    if level == "quarter":
        return f"{d.year:04d}-Q{(d.month - 1) // 3 + 1}"
    if level == "year":
        return f"{d.year:04d}"
    width = 5 if level == "5y" else 10
    lo = (d.year // width) * width
    return f"{lo:04d}-{lo + width - 1:04d}"


class PostcodeHierarchy(_ValueHierarchy):
    """UK postcodes (normalised) by sector, district and area; all three by default."""

    type = HierarchyType.POSTCODE
    keys = frozenset({"type", "levels"})

    def parse(self, params: ParamReader) -> HierarchySpec:
        levels = (params.ordered_subset("levels", POSTCODE_LEVELS) if params.has("levels")
                  else POSTCODE_LEVELS)
        return HierarchySpec(self.type, levels=levels)

    def describe(self, spec: HierarchySpec) -> dict[str, object]:
        return {"type": self.type.value, "levels": list(spec.levels)}

    def place(self, value: str) -> str:
        try:
            return normalise(Kind.POSTCODE, value)
        except InvalidValue as exc:
            raise Unplaceable(str(exc.reason)) from None

    def height(self, spec: HierarchySpec) -> int:
        return len(spec.levels) + 2

    def above(self, spec: HierarchySpec, value: str) -> list[str]:
        return [_postcode_label(value, level) for level in spec.levels]


def _postcode_label(pc: str, level: str) -> str:
    outward, inward = pc.split(" ")
    if level == "sector":
        return f"{outward} {inward[0]}"
    if level == "district":
        return outward
    letters = len(outward) - len(outward.lstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
    return outward[:letters]


class MaskHierarchy(_ValueHierarchy):
    """Text masked from the right: level j keeps the first ``keep[j]`` characters."""

    type = HierarchyType.MASK
    keys = frozenset({"type", "keep"})

    def parse(self, params: ParamReader) -> HierarchySpec:
        keep = params.int_list("keep", minimum=0)
        if any(b >= a for a, b in itertools.pairwise(keep)):
            raise params.error("keep", "keep counts must be strictly decreasing")
        return HierarchySpec(self.type, keep=keep)

    def describe(self, spec: HierarchySpec) -> dict[str, object]:
        return {"type": self.type.value, "keep": list(spec.keep)}

    def height(self, spec: HierarchySpec) -> int:
        return len(spec.keep) + 2

    def above(self, spec: HierarchySpec, value: str) -> list[str]:
        return [value[:n] + "*" * max(len(value) - n, 0) for n in spec.keep]


class SuppressHierarchy(_ValueHierarchy):
    """The value or ``*``."""

    type = HierarchyType.SUPPRESS
    keys = frozenset({"type"})

    def parse(self, params: ParamReader) -> HierarchySpec:
        return HierarchySpec(self.type)

    def describe(self, spec: HierarchySpec) -> dict[str, object]:
        return {"type": self.type.value}

    def height(self, spec: HierarchySpec) -> int:
        return 2

    def above(self, spec: HierarchySpec, value: str) -> list[str]:
        return []


# -- types whose levels come from a file ---------------------------------------------------------


class TreeHierarchy:
    """An ARX hierarchy CSV: one row per original value, column j its level-j label."""

    type: ClassVar[HierarchyType] = HierarchyType.TREE
    keys: ClassVar[frozenset[str]] = frozenset({"type", "file"})

    def parse(self, params: ParamReader) -> HierarchySpec:
        return HierarchySpec(self.type, file=params.text("file"))

    def describe(self, spec: HierarchySpec) -> dict[str, object]:
        return {"type": self.type.value, "file": spec.file}

    def files(self, spec: HierarchySpec) -> tuple[str, ...]:
        return (spec.file,) if spec.file is not None else ()

    def check_files(self, spec: HierarchySpec, files: Mapping[str, bytes], *, column: str) -> None:
        # Imported here: pseudogate.anonymity imports the policy, which imports this module.
        from pseudogate.core.tree import parse_tree_file

        for path in self.files(spec):
            parse_tree_file(files[path], source=f"{path} (column {column!r})")

    def labels(self, spec: HierarchySpec, value: str) -> list[str]:
        raise ConfigurationError(f"hierarchy type {self.type.value!r} has no label function")

    def levels(self, spec: HierarchySpec, values: Sequence[str], *,
               files: Mapping[str, bytes], column: str) -> Levels:
        from pseudogate.core.tree import parse_tree_file

        assert spec.file is not None
        if spec.file not in files:
            raise ConfigurationError(f"hierarchy file {spec.file!r} of column {column!r} is "
                                     "missing")
        table = parse_tree_file(files[spec.file], source=spec.file)
        known = {row[0] for row in table.rows}
        invalid = {i: "not_in_hierarchy" for i, v in enumerate(values) if v not in known}
        return Levels(rows=table.rows, leaf_labels=values, height=table.height, invalid=invalid)


#: THE table of hierarchy types.
HIERARCHY_TYPES: Mapping[HierarchyType, GeneralisationHierarchy] = {
    HierarchyType.INTERVAL: IntervalHierarchy(),
    HierarchyType.DATE: DateHierarchy(),
    HierarchyType.POSTCODE: PostcodeHierarchy(),
    HierarchyType.MASK: MaskHierarchy(),
    HierarchyType.TREE: TreeHierarchy(),
    HierarchyType.SUPPRESS: SuppressHierarchy(),
}
assert all(kind.type is htype for htype, kind in HIERARCHY_TYPES.items())
assert set(HIERARCHY_TYPES) == set(HierarchyType)
