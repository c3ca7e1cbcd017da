"""Policy files: which columns are tokenised, dropped, generalised or kept, and the privacy model.

A policy fails closed: anything it does not understand (an unknown key, action, hierarchy type,
a column it does not name) is refused with a message naming the policy line or the column,
never a data value. Its fingerprint (docs/policy.md) lets an auditor tie an output to the
exact policy text and hierarchy files that produced it.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import itertools
import json
import os
import re
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

import yaml

from pseudogate.core.errors import ConfigurationError, InvalidInput, shown
from pseudogate.core.hierarchy_types import (
    DATE_LEVELS,
    HIERARCHY_TYPES,
    POSTCODE_LEVELS,
    HierarchySpec,
    HierarchyType,
)
from pseudogate.core.identifiers import contains_identifier, direct_identifier_in
from pseudogate.core.identity import IdentityField
from pseudogate.core.names import DOMAIN_PATTERN, DOMAIN_RE
from pseudogate.core.normalise import Kind

__all__ = [
    "DATE_LEVELS",
    "POSTCODE_LEVELS",
    "Action",
    "ColumnRule",
    "HierarchySpec",
    "HierarchyType",
    "Metric",
    "Policy",
    "PrivacySettings",
    "column_label",
    "load_policy",
    "parse_policy",
    "require_ingestion_policy",
]

FINGERPRINT_FORMAT = "pseudogate-policy-v1"

# -- bounds: a policy is a small hand-written file; anything far bigger is a mistake or an attack,
# refused with a clear error before it can exhaust memory, time or the Python stack.
#: Largest policy text, in bytes of UTF-8.
MAX_POLICY_BYTES = 1024 * 1024
#: Deepest nesting of YAML collections (a policy needs 5: policy, columns, column, hierarchy, list).
MAX_POLICY_DEPTH = 16
#: Most YAML nodes (scalars, lists, mappings, aliases) in one policy.
MAX_POLICY_NODES = 100_000
#: Most columns in one policy.
MAX_POLICY_COLUMNS = 10_000
#: Most entries in a list of widths, levels or keep counts.
MAX_LIST_ITEMS = 64
#: Longest text of a number (digits, sign, '_', '.', exponent), checked before it is converted.
MAX_NUMBER_CHARS = 32
#: Largest value of k, l, an interval width or a mask keep count.
MAX_POLICY_INT = 10**15
#: Longest policy name.
MAX_NAME_CHARS = 128


class Action(enum.StrEnum):
    """What happens to a column."""

    TOKENISE = "tokenise"
    DROP = "drop"
    GENERALISE = "generalise"
    KEEP = "keep"
    #: An identity field (``field``) for probabilistic linkage (issue 10, docs/policy.md).
    IDENTIFY = "identify"


class Metric(enum.StrEnum):
    """The quality metric the search minimises (docs/anonymisation.md)."""

    LOSS = "loss"
    DISCERNIBILITY = "discernibility"


@dataclass(frozen=True)
class ColumnRule:
    """One column of the policy."""

    name: str
    action: Action
    kind: Kind | None = None  # tokenise only
    domain: str | None = None  # tokenise only; defaults to the kind's value
    hierarchy: HierarchySpec | None = None  # generalise only
    sensitive: bool = False  # keep only
    line: int = field(default=0, compare=False)  # 1-based line in the policy text
    # After ``line``: this attribute shadows dataclasses.field in the class body.
    field: IdentityField | None = None  # identify only

    def canonical(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "action": self.action.value}
        if self.action is Action.TOKENISE:
            out["kind"] = self.kind.value if self.kind else None
            out["domain"] = self.domain
        elif self.action is Action.GENERALISE:
            out["hierarchy"] = self.hierarchy.canonical() if self.hierarchy else None
        elif self.action is Action.KEEP:
            out["sensitive"] = self.sensitive
        elif self.action is Action.IDENTIFY:
            # Only identify columns carry "field", so older policies' canonical JSON (and
            # fingerprints) are byte-identical to what they were before the action existed.
            out["field"] = self.field.value if self.field else None
        return out


@dataclass(frozen=True)
class PrivacySettings:
    """The privacy model: k-anonymity, optional l-diversity, suppression limit and metric.

    ``suppression_fraction`` is the limit exactly as written in the YAML text (0.29 is 29/100),
    so that ``max_suppressed`` never suffers from binary floating point.
    """

    k: int
    l: int | None
    suppression_limit: float
    metric: Metric
    suppression_fraction: Fraction = Fraction(0)

    def max_suppressed(self, rows: int) -> int:
        """The largest whole number of rows not above ``suppression_limit * rows``."""
        return (self.suppression_fraction * rows).__floor__()

    def canonical(self) -> dict[str, Any]:
        frac = self.suppression_fraction
        return {
            "k": self.k,
            "l": self.l,
            "suppression_limit": f"{frac.numerator}/{frac.denominator}",
            "metric": self.metric.value,
        }


@dataclass(frozen=True)
class Policy:
    """A validated policy. ``files`` holds the bytes of every tree hierarchy file it uses."""

    name: str
    columns: tuple[ColumnRule, ...]
    privacy: PrivacySettings | None
    fingerprint: str
    text: str
    files: Mapping[str, bytes]

    def rule(self, name: str) -> ColumnRule:
        for rule in self.columns:
            if rule.name == name:
                return rule
        raise InvalidInput(f"column {name!r} is not named in policy {self.name!r}")

    def check_input_columns(self, columns: Sequence[str], *, names_are_known: bool = False) -> None:
        """Refuse an input whose columns differ from the policy's (the policy fails closed).

        ``names_are_known``: the columns come from the gateway's own catalog (stored datasets,
        whose names an ingestion policy listed), so messages may quote them.
        """
        # Input column names are the caller's (a file without a header has data there): they
        # are quoted only when they may be shown, and always located by position.
        named = {rule.name for rule in self.columns}
        seen: set[str] = set()
        for position, col in enumerate(columns, 1):
            if col in seen:
                raise InvalidInput(
                    f"input column {column_label(col, position, known=named)} appears more "
                    "than once"
                )
            seen.add(col)
        for position, col in enumerate(columns, 1):
            if col not in named:
                label = column_label(col, position, known=columns if names_are_known else ())
                raise InvalidInput(
                    f"input column {label} is not named in policy "
                    f"{shown(self.name)} (every input column must be listed)"
                )
        for rule in self.columns:
            if rule.name not in seen:
                raise InvalidInput(
                    f"column {rule.name!r} named in policy {self.name!r} (line {rule.line}) "
                    "is missing from the input"
                )

    @property
    def quasi_identifiers(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.columns if r.action is Action.GENERALISE)

    @property
    def sensitive_columns(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.columns if r.action is Action.KEEP and r.sensitive)

    @property
    def tokenised_columns(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.columns if r.action is Action.TOKENISE)

    @property
    def identity_columns(self) -> Mapping[str, IdentityField]:
        """Column name -> identity field of every ``identify`` column, in policy order."""
        return MappingProxyType({r.name: r.field for r in self.columns
                                 if r.action is Action.IDENTIFY and r.field is not None})


def column_label(name: str, position: int, *, known: Collection[str] = ()) -> str:
    """How a message names an input column: quoted only when the reader already knows the name
    (it is in ``known``: the policy's columns, the column asked for) and it is no direct
    identifier; otherwise by its 1-based position.

    A file without a header row has data where the names should be (issue 14, finding 8), and
    a person's name looks like any column name, so no pattern can tell a name from data: only
    names the caller gave us are echoed.
    """
    if name in known and direct_identifier_in(name) is None:
        return repr(name)
    return str(position)


# -- parsing ------------------------------------------------------------------------------------

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _.:/-]{0,127}")
_TOP_KEYS = {"version", "name", "columns", "privacy"}
_PRIVACY_KEYS = {"k", "l", "suppression_limit", "metric"}
_COLUMN_KEYS: dict[Action, set[str]] = {
    Action.TOKENISE: {"action", "kind", "domain"},
    Action.DROP: {"action"},
    Action.GENERALISE: {"action", "hierarchy"},
    Action.KEEP: {"action", "sensitive"},
    Action.IDENTIFY: {"action", "field"},
}


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader whose composer refuses deep nesting and too many nodes, before recursing."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._nodes = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self._nodes += 1
        if self._nodes > MAX_POLICY_NODES:
            raise _TooBig(self._next_mark(), f"more than {MAX_POLICY_NODES} YAML nodes")
        self._depth += 1
        try:
            if self._depth > MAX_POLICY_DEPTH:
                raise _TooBig(self._next_mark(), f"nested deeper than {MAX_POLICY_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def _next_mark(self) -> yaml.Mark | None:
        """Where the next event starts (the node being refused)."""
        # types-PyYAML leaves Parser.peek_event unannotated.
        mark: yaml.Mark | None = self.peek_event().start_mark  # type: ignore[no-untyped-call]
        return mark


class _TooBig(Exception):
    def __init__(self, mark: yaml.Mark | None, problem: str) -> None:
        super().__init__(problem)
        self.mark = mark
        self.problem = problem


def _check_size(text: str, too_big: Callable[[int], str]) -> None:
    """Refuse a document over the policy bound (``too_big(size)`` is the message)."""
    size = len(text.encode("utf-8", errors="surrogatepass"))
    if size > MAX_POLICY_BYTES:
        raise ConfigurationError(too_big(size))


@contextlib.contextmanager
def _bounded_loader(text: str, label: str, *, quote_problem: bool) -> Iterator[_BoundedLoader]:
    """A loader within the bounds; its bound and YAML errors become ConfigurationError naming
    ``label`` and the line, never the text (PyYAML's own messages quote it)."""
    loader: _BoundedLoader | None = None
    try:
        loader = _BoundedLoader(text)  # its reader already refuses some characters
        yield loader
    except _TooBig as exc:
        where = f" line {exc.mark.line + 1}" if exc.mark is not None else ""
        raise ConfigurationError(f"{label}{where}: too large ({exc.problem})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "malformed YAML"
        detail = f" ({problem})" if quote_problem else ""
        raise ConfigurationError(f"{label}{where}: not valid YAML{detail}") from None
    finally:
        if loader is not None:
            loader.dispose()


def _compose(text: str, origin: str) -> yaml.Node | None:
    """The YAML node tree of a policy text within the bounds, or ConfigurationError."""
    _check_size(
        text,
        lambda size: f"policy {origin}: {size} bytes; a policy may hold at most "
        f"{MAX_POLICY_BYTES} bytes",
    )
    try:
        with _bounded_loader(text, f"policy {origin}", quote_problem=True) as loader:
            return loader.get_single_node()
    except RecursionError:  # a backstop: the depth bound should always come first
        raise ConfigurationError(f"policy {origin}: nested too deeply") from None


def load_bounded_yaml(text: str, *, origin: str, what: str = "config") -> Any:
    """Python data of a small YAML document (a server config) within the policy bounds.

    Errors name ``origin`` and the line, never the text (PyYAML's own message quotes it).
    """
    _check_size(text, lambda size: f"{what} {origin}: {size} bytes; at most {MAX_POLICY_BYTES}")
    try:
        with _bounded_loader(text, f"{what} {origin}", quote_problem=False) as loader:
            return loader.get_single_data()
    except (ValueError, OverflowError, ArithmeticError, RecursionError):
        raise ConfigurationError(f"{what} {origin}: a value cannot be read") from None


_NUMBER_TAGS = frozenset({"tag:yaml.org,2002:int", "tag:yaml.org,2002:float"})


class _Where:
    """Formats error locations as "<origin> line N"."""

    def __init__(self, origin: str) -> None:
        self.origin = origin

    def error(self, node: yaml.Node | None, message: str) -> ConfigurationError:
        line = f" line {node.start_mark.line + 1}" if node is not None else ""
        return ConfigurationError(f"policy {self.origin}{line}: {message}")


def _mapping(w: _Where, node: yaml.Node, what: str) -> dict[str, tuple[yaml.Node, yaml.Node]]:
    """A mapping node as {key: (key node, value node)}; refuses duplicate or non-text keys."""
    if not isinstance(node, yaml.MappingNode):
        raise w.error(node, f"{what} must be a mapping")
    out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:null":
            raise w.error(key_node, f"{what}: keys must be text")
        key = str(key_node.value)
        if key in out:
            raise w.error(key_node, f"{what}: {key!r} appears more than once")
        out[key] = (key_node, value_node)
    return out


def _refuse_unknown(w: _Where, entries: Mapping[str, tuple[yaml.Node, yaml.Node]],
                    allowed: set[str], what: str) -> None:
    for key, (key_node, _) in entries.items():
        if key not in allowed:
            raise w.error(key_node, f"{what}: unknown key {shown(key)} (allowed: {sorted(allowed)})")


def _scalar(w: _Where, node: yaml.Node, what: str) -> Any:
    if not isinstance(node, yaml.ScalarNode):
        raise w.error(node, f"{what} must be a single value")
    if node.tag in _NUMBER_TAGS and len(node.value) > MAX_NUMBER_CHARS:
        # Checked before conversion: a 100,000-digit number must cost nothing to refuse.
        raise w.error(node, f"{what}: a number of more than {MAX_NUMBER_CHARS} characters")
    try:
        return _construct(node)
    except (ValueError, OverflowError, ArithmeticError, yaml.YAMLError):
        raise w.error(node, f"{what}: the value cannot be read") from None


def _construct(node: yaml.ScalarNode) -> Any:
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    finally:
        loader.dispose()


def _text(w: _Where, node: yaml.Node, what: str) -> str:
    value = _scalar(w, node, what)
    if not isinstance(value, str) or not value:
        raise w.error(node, f"{what} must be non-empty text")
    return value


def _int(w: _Where, node: yaml.Node, what: str, *, minimum: int) -> int:
    value = _scalar(w, node, what)
    if isinstance(value, bool) or not isinstance(value, int):
        raise w.error(node, f"{what} must be a whole number")
    if value < minimum:
        raise w.error(node, f"{what} must be at least {minimum}")
    if value > MAX_POLICY_INT:
        raise w.error(node, f"{what} must be at most {MAX_POLICY_INT}")
    return value


def _sequence(w: _Where, node: yaml.Node, what: str) -> list[yaml.Node]:
    if not isinstance(node, yaml.SequenceNode) or not node.value:
        raise w.error(node, f"{what} must be a non-empty list")
    if len(node.value) > MAX_LIST_ITEMS:
        raise w.error(node, f"{what} must have at most {MAX_LIST_ITEMS} entries")
    return list(node.value)


def _int_list(w: _Where, node: yaml.Node, what: str, *, minimum: int) -> tuple[int, ...]:
    return tuple(_int(w, item, what, minimum=minimum) for item in _sequence(w, node, what))


def _text_list(w: _Where, node: yaml.Node, what: str) -> tuple[str, ...]:
    return tuple(str(_scalar(w, item, what)) for item in _sequence(w, node, what))


def _ordered_subset(w: _Where, node: yaml.Node, what: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
    levels = _text_list(w, node, what)
    for level in levels:
        if level not in allowed:
            raise w.error(node, f"{what}: unknown level {shown(level)} (allowed: {list(allowed)})")
    positions = [allowed.index(level) for level in levels]
    if any(b <= a for a, b in itertools.pairwise(positions)):
        raise w.error(node, f"{what}: levels must go from finer to coarser without repeats "
                            f"(order: {list(allowed)})")
    return levels


_E = TypeVar("_E", bound=enum.Enum)


def _choice(
    w: _Where,
    node: yaml.Node,
    entries: dict[str, tuple[yaml.Node, yaml.Node]],
    key: str,
    choices: type[_E],
    what: str,
    label: str,
) -> _E:
    """The required ``key`` of a mapping, as a member of the enum ``choices``."""
    if key not in entries:
        raise w.error(node, f"{what}: {key!r} is required")
    value_node = entries[key][1]
    raw = _scalar(w, value_node, f"{what} {key}")
    try:
        return choices(str(raw))
    except ValueError:
        raise w.error(value_node, f"{what}: unknown {label} {shown(str(raw))} "
                                  f"(known: {[c.value for c in choices]})") from None


class _HierarchyParams:
    """A hierarchy mapping of the policy, read by its type (``ParamReader``)."""

    def __init__(self, w: _Where, node: yaml.Node,
                 entries: dict[str, tuple[yaml.Node, yaml.Node]], what: str,
                 htype: HierarchyType) -> None:
        self._w, self._node, self._entries, self._what, self._type = w, node, entries, what, htype

    def _required(self, key: str) -> yaml.Node:
        if key not in self._entries:
            raise self._w.error(self._node, f"{self._what}: {self._type.value} needs {key!r}")
        return self._entries[key][1]

    def has(self, key: str) -> bool:
        return key in self._entries

    def int_list(self, key: str, *, minimum: int) -> tuple[int, ...]:
        return _int_list(self._w, self._required(key), f"{self._what} {key}", minimum=minimum)

    def ordered_subset(self, key: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
        return _ordered_subset(self._w, self._required(key), f"{self._what} {key}", allowed)

    def text(self, key: str) -> str:
        return _text(self._w, self._required(key), f"{self._what} {key}")

    def error(self, key: str, message: str) -> ConfigurationError:
        return self._w.error(self._entries[key][1] if key in self._entries else self._node,
                             f"{self._what}: {message}")


def _hierarchy(w: _Where, node: yaml.Node, column: str) -> HierarchySpec:
    what = f"column {column!r} hierarchy"
    entries = _mapping(w, node, what)
    htype = _choice(w, node, entries, "type", HierarchyType, what, "hierarchy type")
    kind = HIERARCHY_TYPES[htype]
    _refuse_unknown(w, entries, set(kind.keys), what)
    return kind.parse(_HierarchyParams(w, node, entries, what, htype))


def _column(w: _Where, key_node: yaml.Node, node: yaml.Node, name: str) -> ColumnRule:
    what = f"column {name!r}"
    if not _NAME_RE.fullmatch(name) or contains_identifier(name):
        # A policy names columns, never people: an identifier here is data in the wrong place.
        raise w.error(key_node, f"column name {shown(name)} is not allowed")
    entries = _mapping(w, node, what)
    action = _choice(w, node, entries, "action", Action, what, "action")
    _refuse_unknown(w, entries, _COLUMN_KEYS[action], what)
    line = key_node.start_mark.line + 1
    if action is Action.TOKENISE:
        if "kind" not in entries:
            raise w.error(node, f"{what}: tokenise needs 'kind'")
        kind_node = entries["kind"][1]
        raw_kind = _scalar(w, kind_node, f"{what} kind")
        try:
            kind = Kind(str(raw_kind))
        except ValueError:
            raise w.error(kind_node, f"{what}: unknown kind {shown(str(raw_kind))} "
                                     f"(known: {[k.value for k in Kind]})") from None
        domain = kind.value
        if "domain" in entries:
            domain_node = entries["domain"][1]
            domain = _text(w, domain_node, f"{what} domain")
            if not DOMAIN_RE.fullmatch(domain) or contains_identifier(domain):
                raise w.error(domain_node, f"{what}: domain must match {DOMAIN_PATTERN}")
        return ColumnRule(name, action, kind=kind, domain=domain, line=line)
    if action is Action.GENERALISE:
        if "hierarchy" not in entries:
            raise w.error(node, f"{what}: generalise needs 'hierarchy'")
        return ColumnRule(name, action, hierarchy=_hierarchy(w, entries["hierarchy"][1], name),
                          line=line)
    if action is Action.KEEP:
        sensitive = False
        if "sensitive" in entries:
            sens_node = entries["sensitive"][1]
            sensitive = _scalar(w, sens_node, f"{what} sensitive")
            if not isinstance(sensitive, bool):
                raise w.error(sens_node, f"{what}: sensitive must be true or false")
        return ColumnRule(name, action, sensitive=sensitive, line=line)
    if action is Action.IDENTIFY:
        if "field" not in entries:
            raise w.error(node, f"{what}: identify needs 'field'")
        field_node = entries["field"][1]
        raw_field = _scalar(w, field_node, f"{what} field")
        try:
            identity = IdentityField(str(raw_field))
        except ValueError:
            raise w.error(field_node, f"{what}: unknown identity field {shown(str(raw_field))} "
                                      f"(known: {[f.value for f in IdentityField]})") from None
        return ColumnRule(name, action, field=identity, line=line)
    return ColumnRule(name, action, line=line)


def _limit(w: _Where, node: yaml.Node) -> Fraction:
    """The suppression limit as an exact fraction of the decimal text written in the YAML."""
    value = _scalar(w, node, "privacy suppression_limit")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise w.error(node, "privacy suppression_limit must be a number in [0, 1]")
    try:
        decimal = Decimal(str(node.value).strip().replace("_", ""))
        # Bounded before Fraction(), which would otherwise build 10**|exponent| (0.1e-999999999).
        if not decimal.is_finite() or abs(decimal.adjusted()) > MAX_NUMBER_CHARS:
            raise ValueError
        exact = Fraction(decimal)
    except (InvalidOperation, ValueError):
        raise w.error(node, "privacy suppression_limit must be a finite decimal number") from None
    if not 0 <= exact <= 1:
        raise w.error(node, "privacy suppression_limit must be within [0, 1]")
    return exact


def _privacy(w: _Where, node: yaml.Node) -> PrivacySettings:
    entries = _mapping(w, node, "privacy")
    _refuse_unknown(w, entries, _PRIVACY_KEYS, "privacy")
    if "k" not in entries:
        raise w.error(node, "privacy: 'k' is required")
    k = _int(w, entries["k"][1], "privacy k", minimum=2)
    ell = None
    if "l" in entries and _scalar(w, entries["l"][1], "privacy l") is not None:
        ell = _int(w, entries["l"][1], "privacy l", minimum=2)
    limit = _limit(w, entries["suppression_limit"][1]) if "suppression_limit" in entries else Fraction(0)
    metric = Metric.LOSS
    if "metric" in entries:
        metric_node = entries["metric"][1]
        raw = _scalar(w, metric_node, "privacy metric")
        try:
            metric = Metric(str(raw))
        except ValueError:
            raise w.error(metric_node, f"privacy: unknown metric {shown(str(raw))} "
                                       f"(known: {[m.value for m in Metric]})") from None
    return PrivacySettings(k=k, l=ell, suppression_limit=float(limit), metric=metric,
                           suppression_fraction=limit)


def _fingerprint(name: str, columns: Sequence[ColumnRule], privacy: PrivacySettings | None,
                 files: Mapping[str, bytes]) -> str:
    """SHA-256 of the canonical JSON described in docs/policy.md."""
    document = {
        "format": FINGERPRINT_FORMAT,
        "name": name,
        "columns": [rule.canonical() for rule in columns],
        "privacy": privacy.canonical() if privacy else None,
        "hierarchy_files": {path: hashlib.sha256(data).hexdigest() for path, data in files.items()},
    }
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _parse(text: str, read_file: Callable[[str], bytes], origin: str) -> Policy:
    w = _Where(origin)
    root = _compose(text, origin)
    if root is None:
        raise ConfigurationError(f"policy {origin}: empty")
    top = _mapping(w, root, "policy")
    _refuse_unknown(w, top, _TOP_KEYS, "policy")
    for key in ("version", "name", "columns"):
        if key not in top:
            raise w.error(root, f"{key!r} is required")
    version_node = top["version"][1]
    if _scalar(w, version_node, "version") != 1:
        raise w.error(version_node, "unsupported policy version (expected 1)")
    name = _text(w, top["name"][1], "name")
    if len(name) > MAX_NAME_CHARS:
        raise w.error(top["name"][1], f"name must have at most {MAX_NAME_CHARS} characters")
    if contains_identifier(name):
        raise w.error(top["name"][1], "name looks like an identifier (an NHS number, postcode or "
                                      "email address): name the policy, not a person")
    columns_node = top["columns"][1]
    column_entries = _mapping(w, columns_node, "columns")
    if not column_entries:
        raise w.error(columns_node, "columns must name at least one column")
    if len(column_entries) > MAX_POLICY_COLUMNS:
        raise w.error(columns_node, f"columns: at most {MAX_POLICY_COLUMNS} columns")
    rules = tuple(_column(w, kn, vn, key) for key, (kn, vn) in column_entries.items())
    identified: dict[IdentityField, ColumnRule] = {}
    for rule in rules:
        if rule.field is None:
            continue
        if rule.field in identified:
            first = identified[rule.field]
            raise w.error(column_entries[rule.name][0],
                          f"identity field {rule.field.value!r} appears twice (column "
                          f"{first.name!r} line {first.line} and column {rule.name!r} line "
                          f"{rule.line}); each field may be identified by one column only")
        identified[rule.field] = rule
    privacy = _privacy(w, top["privacy"][1]) if "privacy" in top else None
    generalised = [r for r in rules if r.action is Action.GENERALISE]
    if generalised and privacy is None:
        raise w.error(root, f"column {generalised[0].name!r} is generalised but the policy has "
                            "no 'privacy' section")
    if privacy is not None and privacy.l is not None and not any(r.sensitive for r in rules):
        raise w.error(top["privacy"][1], "privacy l needs at least one column with "
                                         "'sensitive: true'")
    files: dict[str, bytes] = {}
    for rule in generalised:
        spec = rule.hierarchy
        if spec is not None:
            kind = HIERARCHY_TYPES[spec.type]
            for path in kind.files(spec):
                if path not in files:
                    files[path] = read_file(path)
            # Validate hierarchy files now, so `policy check` refuses a malformed file.
            kind.check_files(spec, files, column=rule.name)
    return Policy(
        name=name,
        columns=rules,
        privacy=privacy,
        fingerprint=_fingerprint(name, rules, privacy, files),
        text=text,
        files=MappingProxyType(files),
    )


def parse_policy(
    text: str, *, files: Mapping[str, bytes] | None = None, origin: str = "<policy>"
) -> Policy:
    """Parse and validate policy text; tree files come from ``files`` keyed by their path."""
    supplied = dict(files or {})

    def read(path: str) -> bytes:
        if path not in supplied:
            raise ConfigurationError(f"policy {origin}: hierarchy file {path!r} was not supplied")
        return supplied[path]

    return _parse(text, read, origin)


class _FileTooBig(Exception):
    pass


def _read_bounded(path: Path, limit: int) -> bytes:
    """At most ``limit`` bytes of a file; _FileTooBig if it holds more (never read whole)."""
    with path.open("rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise _FileTooBig
    return data


def load_policy(path: str | os.PathLike[str]) -> Policy:
    """Read, parse and validate a policy file; tree paths resolve relative to its folder."""
    p = Path(path)
    try:
        text = _read_bounded(p, MAX_POLICY_BYTES).decode("utf-8")
    except _FileTooBig:
        raise ConfigurationError(
            f"policy {p}: larger than {MAX_POLICY_BYTES} bytes (the limit for a policy)"
        ) from None
    except FileNotFoundError:
        raise ConfigurationError(f"policy {p} does not exist") from None
    except UnicodeDecodeError:
        raise ConfigurationError(f"policy {p} is not UTF-8 text") from None
    except OSError as exc:
        raise ConfigurationError(f"cannot read policy {p}: {exc.strerror}") from None

    def read(relative: str) -> bytes:
        from pseudogate.core.tree import MAX_TREE_BYTES

        target = p.parent / relative
        try:
            return _read_bounded(target, MAX_TREE_BYTES)
        except _FileTooBig:
            raise ConfigurationError(f"policy {p}: hierarchy file {relative!r} is larger than "
                                     f"{MAX_TREE_BYTES} bytes (the limit for a hierarchy)") from None
        except FileNotFoundError:
            raise ConfigurationError(f"policy {p}: hierarchy file {relative!r} does not exist "
                                     f"(looked in {p.parent})") from None
        except OSError as exc:
            raise ConfigurationError(f"policy {p}: cannot read hierarchy file {relative!r}: "
                                     f"{exc.strerror}") from None

    return _parse(text, read, str(p))


def require_ingestion_policy(policy: Policy) -> None:
    """Refuse a policy that is not an ingestion policy (tokenise/drop/keep/identify, no privacy
    model)."""
    for rule in policy.columns:
        if rule.action is Action.GENERALISE:
            raise InvalidInput(f"policy {policy.name!r}: column {rule.name!r} (line {rule.line}) "
                               "is generalised; an ingestion policy may only tokenise, drop, keep "
                               "or identify")
    if policy.privacy is not None:
        raise InvalidInput(f"policy {policy.name!r} has a privacy section; an ingestion policy "
                           "may not")
