"""The ``identify`` column action (issue 10 section 1): parsing, refusals, where it may be used."""

from __future__ import annotations

import hashlib
import json

import pandas as pd
import pytest

from pseudogate.anonymity.engine import anonymise
from pseudogate.core.errors import ConfigurationError, InvalidInput
from pseudogate.core.identity import IdentityField
from pseudogate.core.policy import Action, parse_policy, require_ingestion_policy
from pseudogate.gateway.join import JoinLayout
from pseudogate.gateway.projects import check_extract_policy

COUNCIL = """\
version: 1
name: council
columns:
  nhs: {action: tokenise, kind: nhs_number}
  forename: {action: identify, field: given_name}
  surname: {action: identify, field: family_name}
  dob: {action: identify, field: date_of_birth}
  sex: {action: identify, field: sex}
  postcode: {action: identify, field: postcode}
  street: {action: identify, field: address}
  visit: {action: keep}
"""


def test_when_columns_are_identified_then_each_maps_to_its_field() -> None:
    policy = parse_policy(COUNCIL)
    require_ingestion_policy(policy)  # identify belongs in ingestion policies
    assert dict(policy.identity_columns) == {
        "forename": IdentityField.GIVEN_NAME,
        "surname": IdentityField.FAMILY_NAME,
        "dob": IdentityField.DATE_OF_BIRTH,
        "sex": IdentityField.SEX,
        "postcode": IdentityField.POSTCODE,
        "street": IdentityField.ADDRESS,
    }
    rule = policy.rule("street")
    assert (rule.action, rule.field, rule.line) == (Action.IDENTIFY, IdentityField.ADDRESS, 10)
    assert policy.rule("nhs").field is None
    assert policy.tokenised_columns == ("nhs",)


def test_when_a_policy_has_no_identify_column_then_identity_columns_is_empty() -> None:
    policy = parse_policy("version: 1\nname: x\ncolumns:\n  a: {action: keep}\n")
    assert dict(policy.identity_columns) == {}


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("version: 1\nname: x\ncolumns:\n  a: {action: identify}\n",
         "line 4: column 'a': identify needs 'field'"),
        ("version: 1\nname: x\ncolumns:\n  a: {action: identify, field: shoe_size}\n",
         "line 4: column 'a': unknown identity field 'shoe_size'"),
        ("version: 1\nname: x\ncolumns:\n  a: {action: identify, field: [given_name]}\n",
         "line 4: column 'a' field must be a single value"),
        ("version: 1\nname: x\ncolumns:\n  a: {action: identify, field: given_name, kind: email}\n",
         "line 4: column 'a': unknown key 'kind'"),
        ("version: 1\nname: x\ncolumns:\n  a: {action: identify, field: sex, sensitive: true}\n",
         "unknown key 'sensitive'"),
        ("version: 1\nname: x\ncolumns:\n  a: {action: keep, field: sex}\n",
         "column 'a': unknown key 'field'"),
        ("version: 1\nname: x\ncolumns:\n  a: {action: tokenise, kind: email, field: sex}\n",
         "column 'a': unknown key 'field'"),
    ],
)
def test_when_an_identify_column_is_malformed_then_it_is_refused_naming_the_line(
    text: str, fragment: str
) -> None:
    with pytest.raises(ConfigurationError) as info:
        parse_policy(text)
    assert fragment in str(info.value)


def test_when_a_field_is_identified_twice_then_both_columns_and_lines_are_named() -> None:
    text = ("version: 1\nname: x\ncolumns:\n  first: {action: identify, field: given_name}\n"
            "  other: {action: keep}\n  again: {action: identify, field: given_name}\n")
    with pytest.raises(ConfigurationError) as info:
        parse_policy(text)
    message = str(info.value)
    assert "line 6:" in message
    assert "'given_name' appears twice" in message
    assert "column 'first' line 4" in message and "column 'again' line 6" in message


def test_when_an_extract_policy_identifies_a_column_then_it_is_refused() -> None:
    policy = parse_policy("version: 1\nname: ex\ncolumns:\n  person: {action: keep}\n"
                          "  gp.name: {action: identify, field: given_name}\nprivacy: {k: 2}\n")
    layout = JoinLayout(datasets=("gp",), link_columns=("nhs",), columns=(("gp", "name"),),
                        token_columns=frozenset())
    with pytest.raises(InvalidInput) as info:
        check_extract_policy(policy, layout)
    assert "'gp.name' (line 5) is 'identify'" in str(info.value)
    assert "never reach an extract" in str(info.value)


def test_when_an_anonymisation_policy_identifies_a_column_then_nothing_is_output() -> None:
    policy = parse_policy("version: 1\nname: an\ncolumns:\n  age: {action: keep}\n"
                          "  name: {action: identify, field: given_name}\nprivacy: {k: 2}\n")
    table = pd.DataFrame({"age": ["1", "1"], "name": ["Siobhan", "Siobhan"]}, dtype=object)
    with pytest.raises(InvalidInput) as info:
        anonymise(table, policy)
    assert "'name' (line 5) is 'identify'" in str(info.value)
    assert "Siobhan" not in str(info.value)


def test_fingerprint_of_an_identify_column_is_recomputable_from_the_documented_definition() -> None:
    text = ("version: 1\nname: fire\ncolumns:\n  first_name: {action: identify, field: given_name}\n"
            "  visit: {action: keep}\n")
    document = {
        "format": "pseudogate-policy-v1",
        "name": "fire",
        "columns": [
            {"name": "first_name", "action": "identify", "field": "given_name"},
            {"name": "visit", "action": "keep", "sensitive": False},
        ],
        "privacy": None,
        "hierarchy_files": {},
    }
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert parse_policy(text).fingerprint == hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def test_fingerprint_changes_with_the_identified_field() -> None:
    base = "version: 1\nname: x\ncolumns:\n  a: {action: identify, field: %s}\n"
    assert parse_policy(base % "given_name").fingerprint != parse_policy(base % "family_name").fingerprint
