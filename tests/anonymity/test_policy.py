"""Policy parsing: fail closed with line numbers, exact suppression limit, fingerprint."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from pseudogate.core.errors import ConfigurationError, InvalidInput
from pseudogate.core.normalise import Kind
from pseudogate.core.policy import (
    Action,
    HierarchyType,
    load_policy,
    parse_policy,
    require_ingestion_policy,
)

TREE = b"a;ab;*\nb;ab;*\nc;c;*\n"

GOOD = """\
version: 1
name: gp-research-extract
columns:
  nhs_number:    {action: tokenise, kind: nhs_number, domain: person}
  given_name:    {action: drop}
  date_of_birth: {action: generalise, hierarchy: {type: date, levels: [month, year, 5y, 10y]}}
  sex:           {action: generalise, hierarchy: {type: suppress}}
  postcode:      {action: generalise, hierarchy: {type: postcode}}
  imd_decile:    {action: generalise, hierarchy: {type: interval, widths: [2, 4]}}
  code:          {action: generalise, hierarchy: {type: mask, keep: [3, 1]}}
  education:     {action: generalise, hierarchy: {type: tree, file: trees/edu.csv}}
  diagnosis:     {action: keep, sensitive: true}
  clinic_code:   {action: keep}
privacy:
  k: 5
  l: 2
  suppression_limit: 0.05
  metric: loss
"""


def _parse(text: str) -> object:
    return parse_policy(text, files={"trees/edu.csv": TREE})


def test_when_policy_is_valid_then_every_field_is_parsed() -> None:
    p = parse_policy(GOOD, files={"trees/edu.csv": TREE})
    assert p.name == "gp-research-extract"
    assert [r.name for r in p.columns][:3] == ["nhs_number", "given_name", "date_of_birth"]
    nhs = p.rule("nhs_number")
    assert (nhs.action, nhs.kind, nhs.domain) == (Action.TOKENISE, Kind.NHS_NUMBER, "person")
    assert p.rule("date_of_birth").hierarchy.levels == ("month", "year", "5y", "10y")
    assert p.rule("postcode").hierarchy.levels == ("sector", "district", "area")
    assert p.rule("imd_decile").hierarchy.widths == (2, 4)
    assert p.rule("education").hierarchy.type is HierarchyType.TREE
    assert p.quasi_identifiers == ("date_of_birth", "sex", "postcode", "imd_decile", "code",
                                   "education")
    assert p.sensitive_columns == ("diagnosis",)
    assert p.privacy.k == 5 and p.privacy.l == 2 and p.privacy.metric == "loss"
    assert p.files == {"trees/edu.csv": TREE}
    assert len(p.fingerprint) == 64 and p.fingerprint == p.fingerprint.lower()


def test_when_domain_is_omitted_then_it_defaults_to_the_kind() -> None:
    p = parse_policy("version: 1\nname: x\ncolumns:\n  e: {action: tokenise, kind: email}\n")
    assert p.rule("e").domain == "email"
    require_ingestion_policy(p)


@pytest.mark.parametrize(
    ("limit", "rows", "allowed"),
    [("0.29", 100, 29), ("0.05", 30162, 1508), ("0.1", 30, 3), ("0", 10, 0), ("1", 7, 7),
     ("0.3", 10, 3), ("0.07", 100, 7)],
)
def test_when_limit_times_rows_is_whole_then_it_is_allowed_exactly(
    limit: str, rows: int, allowed: int
) -> None:
    p = parse_policy(f"version: 1\nname: x\ncolumns:\n  a: {{action: generalise, hierarchy: "
                     f"{{type: suppress}}}}\nprivacy: {{k: 2, suppression_limit: {limit}}}\n")
    assert p.privacy.max_suppressed(rows) == allowed


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("version: 1\nname: x\ncolumns:\n  a: {action: shred}\n", "line 4: column 'a': unknown action"),
        (("version: 1\nname: x\ncolumns:\n  a: {action: generalise, hierarchy: {type: magic}}\n"
         "privacy: {k: 2}\n"), "line 4: column 'a' hierarchy: unknown hierarchy type"),
        ("version: 1\nname: x\ncolumns:\n  a: {action: keep}\nprivacy: {k: 1}\n", "line 5: privacy k"),
        (("version: 1\nname: x\ncolumns:\n  a: {action: keep}\nprivacy:\n  k: 2\n"
         "  suppression_limit: 1.5\n"), "line 7: privacy suppression_limit must be within [0, 1]"),
        (("version: 1\nname: x\ncolumns:\n  a: {action: keep}\nprivacy:\n  k: 2\n"
         "  suppression_limit: -0.1\n"), "line 7"),
        ("version: 1\nname: x\ncolumns:\n  a: {action: keep, colour: red}\n", "unknown key 'colour'"),
        ("version: 1\nname: x\ncolumns:\n  a: {action: keep}\n  a: {action: drop}\n",
         "line 5: columns: 'a' appears more than once"),
        ("version: 2\nname: x\ncolumns:\n  a: {action: keep}\n", "line 1: unsupported policy version"),
        ("version: 1\nname: x\ncolumns:\n  a: {action: generalise, hierarchy: {type: suppress}}\n",
         "no 'privacy' section"),
        (("version: 1\nname: x\ncolumns:\n  a: {action: generalise, hierarchy: {type: interval, "
         "widths: [2, 5]}}\nprivacy: {k: 2}\n"), "larger multiple"),
        (("version: 1\nname: x\ncolumns:\n  a: {action: generalise, hierarchy: {type: date, "
         "levels: [year, month]}}\nprivacy: {k: 2}\n"), "finer to coarser"),
        ("version: 1\nname: x\ncolumns:\n  a: {action: tokenise, kind: shoe_size}\n", "unknown kind"),
        ("version: 1\nname: x\ncolumns:\n  a: {action: keep}\nprivacy: {k: 2, l: 2}\n",
         "sensitive: true"),
        ("version: 1\nname: x\ncolumns: [a, b]\n", "line 3: columns must be a mapping"),
        ("version: 1\nname: x\ncolumns:\n  a: {action: keep}\nextra: 1\n", "unknown key 'extra'"),
        ("version: 1\nname: x\ncolumns: {a: {action: keep}\n", "not valid YAML"),
        ("version: 1\nname: x\ncolumns:\n  a: {action: keep}\nprivacy: {k: 2, metric: fun}\n",
         "unknown metric"),
    ],
)
def test_when_policy_is_malformed_then_it_is_refused_naming_the_line(text: str, fragment: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        _parse(text)
    assert fragment in str(info.value)


def test_when_tree_file_gives_a_value_two_parents_then_it_is_refused() -> None:
    text = ("version: 1\nname: x\ncolumns:\n  e: {action: generalise, hierarchy: {type: tree, "
            "file: t.csv}}\nprivacy: {k: 2}\n")
    with pytest.raises(ConfigurationError, match="line 2: a level-0 value has two different parents"):
        parse_policy(text, files={"t.csv": b"a;x;*\na;y;*\n"})
    with pytest.raises(ConfigurationError, match="line 2: 2 columns, expected 3"):
        parse_policy(text, files={"t.csv": b"a;x;*\nb;*\n"})
    with pytest.raises(ConfigurationError, match="was not supplied"):
        parse_policy(text, files={})
    # ARX's files repeat rows identically: accepted.
    parse_policy(text, files={"t.csv": b"a;x;*\na;x;*\n"})


def test_when_tree_path_is_relative_then_it_resolves_beside_the_policy(tmp_path: Path) -> None:
    (tmp_path / "trees").mkdir()
    (tmp_path / "trees" / "edu.csv").write_bytes(TREE)
    (tmp_path / "p.yaml").write_text(GOOD)
    p = load_policy(tmp_path / "p.yaml")
    assert p.files["trees/edu.csv"] == TREE
    assert p.fingerprint == parse_policy(GOOD, files={"trees/edu.csv": TREE}).fingerprint
    (tmp_path / "trees" / "edu.csv").unlink()
    with pytest.raises(ConfigurationError, match="'trees/edu.csv' does not exist"):
        load_policy(tmp_path / "p.yaml")


def test_fingerprint_is_recomputable_from_the_documented_definition() -> None:
    p = parse_policy(GOOD, files={"trees/edu.csv": TREE})
    document = {
        "format": "pseudogate-policy-v1",
        "name": "gp-research-extract",
        "columns": [
            {"name": "nhs_number", "action": "tokenise", "kind": "nhs_number", "domain": "person"},
            {"name": "given_name", "action": "drop"},
            {"name": "date_of_birth", "action": "generalise",
             "hierarchy": {"type": "date", "levels": ["month", "year", "5y", "10y"]}},
            {"name": "sex", "action": "generalise", "hierarchy": {"type": "suppress"}},
            {"name": "postcode", "action": "generalise",
             "hierarchy": {"type": "postcode", "levels": ["sector", "district", "area"]}},
            {"name": "imd_decile", "action": "generalise",
             "hierarchy": {"type": "interval", "widths": [2, 4]}},
            {"name": "code", "action": "generalise", "hierarchy": {"type": "mask", "keep": [3, 1]}},
            {"name": "education", "action": "generalise",
             "hierarchy": {"type": "tree", "file": "trees/edu.csv"}},
            {"name": "diagnosis", "action": "keep", "sensitive": True},
            {"name": "clinic_code", "action": "keep", "sensitive": False},
        ],
        "privacy": {"k": 5, "l": 2, "suppression_limit": "1/20", "metric": "loss"},
        "hierarchy_files": {"trees/edu.csv": hashlib.sha256(TREE).hexdigest()},
    }
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert p.fingerprint == hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def test_fingerprint_ignores_layout_but_not_content_or_tree_bytes() -> None:
    base = parse_policy(GOOD, files={"trees/edu.csv": TREE}).fingerprint
    relaid = GOOD.replace("suppression_limit: 0.05", "suppression_limit: 0.050  # five per cent")
    assert parse_policy(relaid, files={"trees/edu.csv": TREE}).fingerprint == base
    assert parse_policy(GOOD.replace("k: 5", "k: 6"),
                        files={"trees/edu.csv": TREE}).fingerprint != base
    assert parse_policy(GOOD, files={"trees/edu.csv": TREE + b"d;d;*\n"}).fingerprint != base


def test_when_input_columns_differ_from_policy_then_refused_naming_the_column() -> None:
    p = parse_policy("version: 1\nname: x\ncolumns:\n  a: {action: keep}\n  b: {action: drop}\n")
    p.check_input_columns(["b", "a"])
    with pytest.raises(InvalidInput, match="input column 3 is not named"):
        p.check_input_columns(["a", "b", "c"])
    with pytest.raises(InvalidInput, match="column 'b' named in policy 'x' \\(line 5\\) is missing"):
        p.check_input_columns(["a"])
    with pytest.raises(InvalidInput, match="more than once"):
        p.check_input_columns(["a", "a", "b"])


def test_ingestion_policy_refuses_generalisation_and_privacy() -> None:
    with pytest.raises(InvalidInput, match="generalised"):
        require_ingestion_policy(_parse(GOOD))
    keep_only = parse_policy("version: 1\nname: x\ncolumns:\n  a: {action: keep}\nprivacy: {k: 2}\n")
    with pytest.raises(InvalidInput, match="privacy section"):
        require_ingestion_policy(keep_only)


@pytest.mark.parametrize("value", ["9434765919", "943 476 5919", "ann@example.org", "LL15 1AA",
                                   "1970-01-01", "Smith, Ann"])
def test_when_an_input_column_name_could_be_data_then_it_is_named_by_position(value: str) -> None:
    p = parse_policy("version: 1\nname: x\ncolumns:\n  a: {action: keep}\n")
    with pytest.raises(InvalidInput) as unnamed:
        p.check_input_columns(["a", value])
    assert "input column 2 is not named in policy 'x'" in str(unnamed.value)
    with pytest.raises(InvalidInput) as twice:
        p.check_input_columns([value, "a", value])
    assert "input column 3 appears more than once" in str(twice.value)
    assert value not in str(unnamed.value) + str(twice.value)
