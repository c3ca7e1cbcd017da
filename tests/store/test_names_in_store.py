"""The store checks names by the one rule of each kind (core/names.py)."""

from __future__ import annotations

import pytest

from pseudogate.core.errors import InvalidInput
from pseudogate.core.names import DEFAULT_DOMAIN, DOMAIN_PATTERN
from pseudogate.gateway import Store
from tests.statements import STATEMENTS


def test_when_a_project_domain_breaks_the_server_rule_then_it_is_refused(store: Store) -> None:
    with pytest.raises(InvalidInput) as refused:
        store.prepare_project(**STATEMENTS, project_id="p1", researcher="uni", datasets=["gp_diagnoses"],
                              policy_text="(not read: the domain is checked first)", expires="2099-01-01", domain="0abc")
    assert str(refused.value) == f"linkage domain must match {DOMAIN_PATTERN}"


def test_when_an_optout_domain_breaks_the_server_rule_then_it_is_refused(store: Store) -> None:
    with pytest.raises(InvalidInput, match=r"^linkage domain must match "):
        store.prepare_optouts(["9434765919"], domain="a" * 64)


def test_when_no_domain_is_given_then_optouts_use_the_default_domain(store: Store) -> None:
    prepared = store.prepare_optouts(["9434765919"], domain="")
    assert prepared.domain == DEFAULT_DOMAIN
