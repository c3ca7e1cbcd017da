"""Policy files: which columns are tokenised, dropped, generalised or kept, and the privacy model.

A policy fails closed: anything it does not understand (an unknown key, action, hierarchy type,
a column it does not name) is refused with a message naming the policy line or the column,
never a data value. Its fingerprint (docs/policy.md) lets an auditor tie an output to the
exact policy text and hierarchy files that produced it.
"""

from __future__ import annotations

import enum
import hashlib
import itertools
import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

import yaml

from pseudogate.errors import ConfigurationError, InvalidInput
from pseudogate.identifiers import direct_identifier_in
from pseudogate.normalise import Kind

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


class Action(enum.StrEnum):
    """What happens to a column."""

    TOKENISE = "tokenise"
    DROP = "drop"
    GENERALISE = "generalise"
    KEEP = "keep"


class HierarchyType(enum.StrEnum):
    """The generalisation hierarchies a `generalise` column can use."""

    INTERVAL = "interval"
    DATE = "date"
    POSTCODE = "postcode"
    MASK = "mask"
    TREE = "tree"
    SUPPRESS = "suppress"


class Metric(enum.StrEnum):
    LOSS = "loss"
    DISCERNIBILITY = "discernibility"


#: Date levels from finest to coarsest; a policy lists a subset in this order.
DATE_LEVELS: tuple[str, ...] = ("month", "quarter", "year", "5y", "10y")
#: Postcode levels from finest to coarsest; a policy lists a subset in this order.
POSTCODE_LEVELS: tuple[str, ...] = ("sector", "district", "area")


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

    def canonical(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type.value}
        if self.type is HierarchyType.INTERVAL:
            out["widths"] = list(self.widths)
        elif self.type in (HierarchyType.DATE, HierarchyType.POSTCODE):
            out["levels"] = list(self.levels)
        elif self.type is HierarchyType.MASK:
            out["keep"] = list(self.keep)
        elif self.type is HierarchyType.TREE:
            out["file"] = self.file
        return out


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

    def canonical(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "action": self.action.value}
        if self.action is Action.TOKENISE:
            out["kind"] = self.kind.value if self.kind else None
            out["domain"] = self.domain
        elif self.action is Action.GENERALISE:
            out["hierarchy"] = self.hierarchy.canonical() if self.hierarchy else None
        elif self.action is Action.KEEP:
            out["sensitive"] = self.sensitive
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
    metric: str  # "loss" | "discernibility"
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
            "metric": self.metric,
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

    def check_input_columns(self, columns: Sequence[str]) -> None:
        """Refuse an input whose columns differ from the policy's (the policy fails closed)."""
        seen: set[str] = set()
        for position, col in enumerate(columns, 1):
            if col in seen:
                raise InvalidInput(
                    f"input column {column_label(col, position)} appears more than once"
                )
            seen.add(col)
        named = {rule.name for rule in self.columns}
        for position, col in enumerate(columns, 1):
            if col not in named:
                raise InvalidInput(
                    f"input column {column_label(col, position)} is not named in policy "
                    f"{self.name!r} (every input column must be listed)"
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


def column_label(name: str, position: int) -> str:
    """How a message names an input column: its name quoted if that is a plain column name
    (the policy's pattern, with a letter) and no direct identifier, else its 1-based position.

    A file without a header row has data where the names should be (issue 14, finding 8).
    """
    if (
        _NAME_RE.fullmatch(name)
        and any(ch.isalpha() for ch in name)
        and direct_identifier_in(name) is None
    ):
        return repr(name)
    return str(position)


# -- parsing ------------------------------------------------------------------------------------

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _.:/-]{0,127}")
_DOMAIN_RE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
_TOP_KEYS = {"version", "name", "columns", "privacy"}
_PRIVACY_KEYS = {"k", "l", "suppression_limit", "metric"}
_COLUMN_KEYS: dict[Action, set[str]] = {
    Action.TOKENISE: {"action", "kind", "domain"},
    Action.DROP: {"action"},
    Action.GENERALISE: {"action", "hierarchy"},
    Action.KEEP: {"action", "sensitive"},
}
_HIERARCHY_KEYS: dict[HierarchyType, set[str]] = {
    HierarchyType.INTERVAL: {"type", "widths"},
    HierarchyType.DATE: {"type", "levels"},
    HierarchyType.POSTCODE: {"type", "levels"},
    HierarchyType.MASK: {"type", "keep"},
    HierarchyType.TREE: {"type", "file"},
    HierarchyType.SUPPRESS: {"type"},
}


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
            raise w.error(key_node, f"{what}: unknown key {key!r} (allowed: {sorted(allowed)})")


def _scalar(w: _Where, node: yaml.Node, what: str) -> Any:
    if not isinstance(node, yaml.ScalarNode):
        raise w.error(node, f"{what} must be a single value")
    return _construct(node)


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
    return value


def _int_list(w: _Where, node: yaml.Node, what: str, *, minimum: int) -> tuple[int, ...]:
    if not isinstance(node, yaml.SequenceNode) or not node.value:
        raise w.error(node, f"{what} must be a non-empty list")
    return tuple(_int(w, item, what, minimum=minimum) for item in node.value)


def _text_list(w: _Where, node: yaml.Node, what: str) -> tuple[str, ...]:
    if not isinstance(node, yaml.SequenceNode) or not node.value:
        raise w.error(node, f"{what} must be a non-empty list")
    return tuple(str(_scalar(w, item, what)) for item in node.value)


def _ordered_subset(w: _Where, node: yaml.Node, what: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
    levels = _text_list(w, node, what)
    for level in levels:
        if level not in allowed:
            raise w.error(node, f"{what}: unknown level {level!r} (allowed: {list(allowed)})")
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
        raise w.error(value_node, f"{what}: unknown {label} {str(raw)!r} "
                                  f"(known: {[c.value for c in choices]})") from None


def _hierarchy(w: _Where, node: yaml.Node, column: str) -> HierarchySpec:
    what = f"column {column!r} hierarchy"
    entries = _mapping(w, node, what)
    htype = _choice(w, node, entries, "type", HierarchyType, what, "hierarchy type")
    _refuse_unknown(w, entries, _HIERARCHY_KEYS[htype], what)

    def required(key: str) -> yaml.Node:
        if key not in entries:
            raise w.error(node, f"{what}: {htype.value} needs {key!r}")
        return entries[key][1]

    if htype is HierarchyType.INTERVAL:
        widths_node = required("widths")
        widths = _int_list(w, widths_node, f"{what} widths", minimum=1)
        for before, after in itertools.pairwise(widths):
            if after <= before or after % before:
                raise w.error(widths_node, f"{what}: each width must be a larger multiple of "
                                           f"the one before ({after} after {before} is not)")
        return HierarchySpec(htype, widths=widths)
    if htype is HierarchyType.DATE:
        levels = _ordered_subset(w, required("levels"), f"{what} levels", DATE_LEVELS)
        return HierarchySpec(htype, levels=levels)
    if htype is HierarchyType.POSTCODE:
        if "levels" in entries:
            levels = _ordered_subset(w, entries["levels"][1], f"{what} levels", POSTCODE_LEVELS)
        else:
            levels = POSTCODE_LEVELS
        return HierarchySpec(htype, levels=levels)
    if htype is HierarchyType.MASK:
        keep_node = required("keep")
        keep = _int_list(w, keep_node, f"{what} keep", minimum=0)
        if any(b >= a for a, b in itertools.pairwise(keep)):
            raise w.error(keep_node, f"{what}: keep counts must be strictly decreasing")
        return HierarchySpec(htype, keep=keep)
    if htype is HierarchyType.TREE:
        file_node = required("file")
        return HierarchySpec(htype, file=_text(w, file_node, f"{what} file"))
    return HierarchySpec(htype)


def _column(w: _Where, key_node: yaml.Node, node: yaml.Node, name: str) -> ColumnRule:
    what = f"column {name!r}"
    if not _NAME_RE.fullmatch(name):
        raise w.error(key_node, f"column name {name!r} is not allowed")
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
            raise w.error(kind_node, f"{what}: unknown kind {str(raw_kind)!r} "
                                     f"(known: {[k.value for k in Kind]})") from None
        domain = kind.value
        if "domain" in entries:
            domain_node = entries["domain"][1]
            domain = _text(w, domain_node, f"{what} domain")
            if not _DOMAIN_RE.fullmatch(domain):
                raise w.error(domain_node, f"{what}: domain must be lowercase letters, digits, "
                                           "'_', '.' or '-'")
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
    return ColumnRule(name, action, line=line)


def _limit(w: _Where, node: yaml.Node) -> Fraction:
    """The suppression limit as an exact fraction of the decimal text written in the YAML."""
    value = _scalar(w, node, "privacy suppression_limit")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise w.error(node, "privacy suppression_limit must be a number in [0, 1]")
    try:
        exact = Fraction(Decimal(str(node.value).strip().replace("_", "")))
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
            raise w.error(metric_node, f"privacy: unknown metric {str(raw)!r} "
                                       f"(known: {[m.value for m in Metric]})") from None
    return PrivacySettings(k=k, l=ell, suppression_limit=float(limit), metric=metric.value,
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
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "malformed YAML"
        raise ConfigurationError(f"policy {origin}{where}: not valid YAML ({problem})") from None
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
    columns_node = top["columns"][1]
    column_entries = _mapping(w, columns_node, "columns")
    if not column_entries:
        raise w.error(columns_node, "columns must name at least one column")
    rules = tuple(_column(w, kn, vn, key) for key, (kn, vn) in column_entries.items())
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
        if spec is not None and spec.type is HierarchyType.TREE and spec.file is not None:
            if spec.file not in files:
                files[spec.file] = read_file(spec.file)
            # Validate the tree now, so `policy check` refuses a malformed file.
            from pseudogate.anonymity.tree import parse_tree_file

            parse_tree_file(files[spec.file], source=f"{spec.file} (column {rule.name!r})")
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


def load_policy(path: str | os.PathLike[str]) -> Policy:
    """Read, parse and validate a policy file; tree paths resolve relative to its folder."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigurationError(f"policy {p} does not exist") from None
    except UnicodeDecodeError:
        raise ConfigurationError(f"policy {p} is not UTF-8 text") from None
    except OSError as exc:
        raise ConfigurationError(f"cannot read policy {p}: {exc.strerror}") from None

    def read(relative: str) -> bytes:
        target = p.parent / relative
        try:
            return target.read_bytes()
        except FileNotFoundError:
            raise ConfigurationError(f"policy {p}: hierarchy file {relative!r} does not exist "
                                     f"(looked in {p.parent})") from None
        except OSError as exc:
            raise ConfigurationError(f"policy {p}: cannot read hierarchy file {relative!r}: "
                                     f"{exc.strerror}") from None

    return _parse(text, read, str(p))


def require_ingestion_policy(policy: Policy) -> None:
    """Refuse a policy that is not an ingestion policy (tokenise/drop/keep, no privacy model)."""
    for rule in policy.columns:
        if rule.action is Action.GENERALISE:
            raise InvalidInput(f"policy {policy.name!r}: column {rule.name!r} (line {rule.line}) "
                               "is generalised; an ingestion policy may only tokenise, drop or keep")
    if policy.privacy is not None:
        raise InvalidInput(f"policy {policy.name!r} has a privacy section; an ingestion policy "
                           "may not")
