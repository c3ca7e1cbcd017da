"""The hierarchy types: one class per type in one table, used by the parser and the engine."""

from __future__ import annotations

import pytest

from pseudogate.core.errors import ConfigurationError
from pseudogate.core.hierarchy_types import HIERARCHY_TYPES, HierarchySpec, HierarchyType
from pseudogate.core.policy import parse_policy


def test_when_a_hierarchy_type_exists_then_the_table_has_exactly_one_class_for_it() -> None:
    assert list(HIERARCHY_TYPES) == list(HierarchyType)
    assert all(kind.type is htype for htype, kind in HIERARCHY_TYPES.items())
    assert len({type(kind) for kind in HIERARCHY_TYPES.values()}) == len(HierarchyType)


@pytest.mark.parametrize(
    ("spec", "canonical"),
    [
        (HierarchySpec(HierarchyType.INTERVAL, widths=(2, 4)),
         {"type": "interval", "widths": [2, 4]}),
        (HierarchySpec(HierarchyType.DATE, levels=("year",)), {"type": "date", "levels": ["year"]}),
        (HierarchySpec(HierarchyType.POSTCODE, levels=("area",)),
         {"type": "postcode", "levels": ["area"]}),
        (HierarchySpec(HierarchyType.MASK, keep=(0,)), {"type": "mask", "keep": [0]}),
        (HierarchySpec(HierarchyType.TREE, file="t.csv"), {"type": "tree", "file": "t.csv"}),
        (HierarchySpec(HierarchyType.SUPPRESS), {"type": "suppress"}),
    ],
)
def test_when_a_spec_is_described_then_only_its_type_fields_appear(
    spec: HierarchySpec, canonical: dict[str, object]
) -> None:
    assert spec.canonical() == canonical


@pytest.mark.parametrize("htype", list(HierarchyType))
def test_when_a_key_is_unknown_then_the_message_lists_the_keys_of_that_type(
    htype: HierarchyType,
) -> None:
    text = (f"version: 1\nname: x\ncolumns:\n  a: {{action: generalise, hierarchy: "
            f"{{type: {htype.value}, colour: red}}}}\nprivacy: {{k: 2}}\n")
    with pytest.raises(ConfigurationError) as info:
        parse_policy(text)
    allowed = sorted(HIERARCHY_TYPES[htype].keys)
    assert f"unknown key 'colour' (allowed: {allowed})" in str(info.value)


@pytest.mark.parametrize(
    ("hierarchy", "fragment"),
    [
        ("{type: interval}", "line 4: column 'a' hierarchy: interval needs 'widths'"),
        ("{type: interval, widths: []}", "column 'a' hierarchy widths must be a non-empty list"),
        ("{type: mask, keep: [1, 3]}",
         "column 'a' hierarchy: keep counts must be strictly decreasing"),
        ("{type: mask, keep: [-1]}", "column 'a' hierarchy keep must be at least 0"),
        ("{type: date}", "column 'a' hierarchy: date needs 'levels'"),
        ("{type: postcode, levels: [town]}", "unknown level 'town'"),
        ("{type: tree}", "column 'a' hierarchy: tree needs 'file'"),
        ("{type: tree, file: ''}", "column 'a' hierarchy file must be non-empty text"),
    ],
)
def test_when_a_type_refuses_its_parameters_then_the_message_names_column_and_line(
    hierarchy: str, fragment: str
) -> None:
    text = (f"version: 1\nname: x\ncolumns:\n  a: {{action: generalise, hierarchy: {hierarchy}}}\n"
            "privacy: {k: 2}\n")
    with pytest.raises(ConfigurationError) as info:
        parse_policy(text)
    assert fragment in str(info.value)
    assert "line 4" in str(info.value)


def test_when_tree_labels_are_asked_value_by_value_then_refused() -> None:
    with pytest.raises(ConfigurationError, match="has no label function"):
        HIERARCHY_TYPES[HierarchyType.TREE].labels(HierarchySpec(HierarchyType.TREE, file="t"), "a")
