"""A project's public statements: the rules, refusals that never echo the value, and their
audit details (new events carry them; events from before them still verify)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pseudogate.audit.events import details_ok, safe_details
from pseudogate.core.errors import InvalidInput
from pseudogate.core.statements import (
    STATEMENT_FIELDS,
    STATEMENT_LIMITS,
    ProjectStatements,
    check_statement,
    statement_text_ok,
)
from tests.statements import STATEMENTS

OLD_PROJECT_DETAILS = {  # a CreateProject event's details before statements existed
    "change": "0123456789abcdef0123456789abcdef", "researcher": "uni",
    "datasets": ["gp_diagnoses"], "domain": "person", "expires": "2027-03-31", "linkage": "exact",
}


def test_when_statements_are_checked_then_they_are_trimmed() -> None:
    checked = ProjectStatements.checked(**{k: f"  {v}\n" for k, v in STATEMENTS.items()})
    assert checked.as_dict() == STATEMENTS


@pytest.mark.parametrize("name", STATEMENT_FIELDS)
def test_when_a_statement_is_missing_then_it_is_named(name: str) -> None:
    for missing in ("", "  ", None):
        with pytest.raises(InvalidInput, match=f"^{name}: the project's .* is required$"):
            ProjectStatements.checked(**{**STATEMENTS, name: missing})


def test_when_a_refusal_names_a_flag_then_the_flag_is_used() -> None:
    with pytest.raises(InvalidInput, match="^--legal-basis: "):
        check_statement("legal_basis", "", field="--legal-basis")


@pytest.mark.parametrize("name", STATEMENT_FIELDS)
def test_when_a_statement_is_at_its_limit_then_it_is_accepted_and_one_more_refused(
    name: str,
) -> None:
    limit = STATEMENT_LIMITS[name]
    assert check_statement(name, "é" * limit) == "é" * limit
    with pytest.raises(InvalidInput, match=f"longer than {limit} characters"):
        check_statement(name, "é" * (limit + 1))


@pytest.mark.parametrize(
    "value",
    ["Study of 9434765919", "Study of 943-476-5919", "post to LL11 2AB", "ll112ab",
     "mail ann.lee@example.org", "ANN@EXAMPLE.ORG"],
)
@pytest.mark.parametrize("name", STATEMENT_FIELDS)
def test_when_a_statement_holds_an_identifier_then_the_refusal_does_not_echo_it(
    name: str, value: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_statement(name, value)
    message = str(caught.value)
    assert "NHS number, a postcode or an email address" in message
    assert value not in message and "9434765919" not in message and "2AB" not in message
    assert "example.org" not in message.lower()


def test_when_a_statement_has_line_breaks_then_only_the_long_ones_accept_them() -> None:
    assert check_statement("purpose", "one\ntwo") == "one\ntwo"
    assert check_statement("public_benefit", "one\ntwo") == "one\ntwo"
    for name in ("title", "legal_basis"):
        with pytest.raises(InvalidInput, match="control character"):
            check_statement(name, "one\ntwo")
    for bad in ("a\rb", "a\tb", "a\x00b", "a\u2028b", "a\u202eb", "a\ud800b"):
        with pytest.raises(InvalidInput, match="control character"):
            check_statement("purpose", bad)


def test_when_text_is_welsh_or_has_symbols_then_it_is_accepted() -> None:
    text = "Iechyd a gofal: ŵ ŷ â & <b> — 6(1)(e) £5"
    assert check_statement("title", text) == text


def test_when_an_old_project_event_has_no_statements_then_it_is_still_well_formed() -> None:
    assert details_ok(OLD_PROJECT_DETAILS)


def test_when_a_project_event_has_statements_then_they_are_well_formed() -> None:
    assert details_ok({**OLD_PROJECT_DETAILS, **STATEMENTS})
    assert details_ok({**OLD_PROJECT_DETAILS, "title": None})


@pytest.mark.parametrize(
    "bad", ["", " padded ", "x" * 201, "about 9434765919", "a\x00b", 5, ["list"]]
)
def test_when_a_recorded_title_breaks_a_rule_then_the_verifier_refuses_it(bad: object) -> None:
    assert not details_ok({**OLD_PROJECT_DETAILS, "title": bad})


def test_when_a_statement_with_an_identifier_reaches_the_log_then_it_is_recorded_as_null() -> None:
    safe = safe_details({**STATEMENTS, "purpose": "call ann.lee@example.org"})
    assert safe == {**STATEMENTS, "purpose": None}


@given(st.text(max_size=300))
def test_when_any_text_is_checked_then_accepted_text_is_what_the_verifier_accepts(
    text: str,
) -> None:
    try:
        stored = check_statement("title", text)
    except InvalidInput as exc:
        assert text.strip() == "" or text.strip() not in str(exc)
        return
    assert statement_text_ok("title", stored)
    assert details_ok({**OLD_PROJECT_DETAILS, "title": stored})
