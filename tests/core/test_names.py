"""One rule per kind of name (core/names.py): each accepts and refuses what it should, and a
domain one part of the gateway accepts is accepted by every other part."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pseudogate.core import names
from pseudogate.core.errors import ConfigurationError, InvalidInput
from pseudogate.core.keyring import Keyring
from pseudogate.core.policy import parse_policy
from pseudogate.core.tokenisation import DEFAULT_DOMAINS, load_domain_config

NHS = "9434765919"
_KEYRING = Keyring.generate()


@pytest.mark.parametrize(
    ("pattern", "good", "bad"),
    [
        (names.DATASET_NAME_RE, ["gp", "gp_diagnoses", "a" * 63], ["", "Gp", "1gp", "gp-x", "a" * 64]),
        (names.PROJECT_ID_RE, ["p1", "Study-2.a_b", "9" * 64], ["", "-p", "p 1", "p/1", "a" * 65]),
        (names.DOMAIN_RE, ["person", "email", "a.b-c_d", "a" * 63], ["", "0abc", "Person", "-a", "a" * 64]),
        (names.ORG_RE, ["uni", "gp-north", "9", "a" * 63], ["", "Uni", "a_b", "a.b", "a" * 64]),
        (names.ROLE_RE, ["admin", "researcher"], ["", "Admin", "a1", "a" * 21]),
        (names.KEY_ID_RE, ["lk-1a2b3c4d", "k", "a" * 16], ["", "Lk-1", "lk_1", "a" * 17]),
    ],
)
def test_when_a_name_is_checked_then_its_pattern_accepts_and_refuses_representative_names(
    pattern: re.Pattern[str], good: list[str], bad: list[str]
) -> None:
    assert all(pattern.fullmatch(name) for name in good)
    assert not any(pattern.fullmatch(name) for name in bad)


def test_when_patterns_are_quoted_then_the_text_is_the_compiled_pattern() -> None:
    pairs = [
        (names.DATASET_NAME_RE, names.DATASET_NAME_PATTERN),
        (names.PROJECT_ID_RE, names.PROJECT_ID_PATTERN),
        (names.DOMAIN_RE, names.DOMAIN_PATTERN),
        (names.ORG_RE, names.ORG_PATTERN),
        (names.ROLE_RE, names.ROLE_PATTERN),
        (names.KEY_ID_RE, names.KEY_ID_PATTERN),
    ]
    assert [regex.pattern for regex, _ in pairs] == [text for _, text in pairs]


def test_when_spiffe_identity_is_matched_then_the_organisation_follows_the_org_rule() -> None:
    ok = names.SPIFFE_IDENTITY_RE.fullmatch("spiffe://pseudogate/org/gp-north/role/provider")
    assert ok is not None and ok.groups() == ("gp-north", "provider")
    assert names.SPIFFE_IDENTITY_RE.fullmatch("spiffe://pseudogate/org/gp_north/role/provider") is None
    assert names.SPIFFE_IDENTITY_RE.fullmatch(f"spiffe://pseudogate/org/{'a' * 64}/role/admin") is None


@pytest.mark.parametrize(
    ("check", "value", "field"),
    [
        (names.check_dataset_name, "Bad Name", "dataset name must match [a-z][a-z0-9_]{0,62}"),
        (names.check_dataset_name, "ll112ab", "dataset name looks like an identifier"),
        (names.check_project_id, "p 943 476 5919", "project id must match"),
        (names.check_project_id, NHS, "project id looks like an identifier"),
        (names.check_domain, f"0{NHS}", "linkage domain must match [a-z][a-z0-9_.-]{0,62}"),
    ],
)
def test_when_a_check_refuses_then_it_names_the_field_and_never_the_value(
    check: object, value: str, field: str
) -> None:
    assert callable(check)
    with pytest.raises(InvalidInput) as refused:
        check(value)
    assert str(refused.value).startswith(field)
    assert value not in str(refused.value)


def test_when_organisation_is_refused_then_the_message_names_the_given_field() -> None:
    with pytest.raises(InvalidInput, match=r"^--researcher must be an organisation name"):
        names.check_organisation("Uni Of X", field="--researcher")
    assert names.check_organisation("uni", field="--researcher") == "uni"


def test_when_domain_is_checked_then_the_field_given_is_named() -> None:
    with pytest.raises(InvalidInput, match=r"^--domain must match "):
        names.check_domain("Person", field="--domain")
    assert names.check_domain("person") == "person"


def test_when_default_domain_is_used_then_it_is_a_built_in_nhs_number_domain() -> None:
    assert names.DOMAIN_RE.fullmatch(names.DEFAULT_DOMAIN)
    assert DEFAULT_DOMAINS[names.DEFAULT_DOMAIN].value == "nhs_number"


def test_when_every_domain_pattern_is_quoted_in_messages_then_it_is_the_same_pattern(
    tmp_path: Path,
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("domains: {'0abc': email}\n", encoding="utf-8")
    with pytest.raises(ConfigurationError) as server:
        load_domain_config(config)
    with pytest.raises(ConfigurationError) as policy:
        parse_policy(_policy_with_domain("0abc"), origin="p.yaml")
    with pytest.raises(InvalidInput) as project:
        names.check_domain("0abc")
    for refused in (server, policy, project):
        assert f"must match {names.DOMAIN_PATTERN}" in str(refused.value)


def _policy_with_domain(domain: str) -> str:
    return (
        "version: 1\nname: p\ncolumns:\n"
        f"  nhs_number: {{action: tokenise, kind: nhs_number, domain: {domain!r}}}\n"
    )


# Names near both old domain rules (the server's and the projects' wider one), and any text.
_DOMAIN_LIKE = st.one_of(
    st.from_regex(r"[a-z0-9][a-z0-9_.-]{0,64}", fullmatch=True),
    st.text(alphabet="abz09_.-A ", min_size=0, max_size=70),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(domain=_DOMAIN_LIKE)
def test_when_a_policy_accepts_a_domain_then_the_server_and_projects_accept_it(
    tmp_path: Path, domain: str
) -> None:
    try:
        policy = parse_policy(_policy_with_domain(domain), origin="p.yaml")
    except ConfigurationError:
        return
    assert policy.rule("nhs_number").domain == domain
    config = tmp_path / "config.yaml"
    config.write_text(f"domains: {{{domain!r}: nhs_number}}\n", encoding="utf-8")
    assert domain in load_domain_config(config).domains  # the tokenisation server serves it
    assert names.check_domain(domain) == domain  # what projects and opt-outs check
    _KEYRING.linkage_tokeniser(domain)  # and a key can be derived for it
