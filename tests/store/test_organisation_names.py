"""Organisation names typed by callers follow the certificate rule [a-z0-9-]{1,63} (issue 14 #11)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pseudogate.core.authz import ORG_RE, check_organisation, spiffe_uri
from pseudogate.core.errors import InvalidInput
from pseudogate.gateway import Store
from tests.statements import STATEMENTS

from .helpers import council_columns, gp_columns, ipc, people, submit
from .test_projects import POLICY

BAD_NAMES = ["UNI-X", "uni-x\x00", "../uni", "", " uni", "uni_x", "a" * 64, "uni.x", "ünï"]


@pytest.fixture
def populated(store: Store) -> Store:
    submit(store, "gp_diagnoses", "gp", "gp-org", ipc(gp_columns(people(5))))
    submit(store, "social_care", "council", "council-org", ipc(council_columns(people(5))))
    return store


@pytest.mark.parametrize("researcher", BAD_NAMES)
def test_when_the_researcher_is_not_a_certificate_organisation_then_the_project_is_refused(
    populated: Store, researcher: str
) -> None:
    with pytest.raises(InvalidInput, match="researcher organisation must be") as caught:
        populated.create_project(**STATEMENTS, project_id="p1", researcher=researcher,
                                 datasets=["gp_diagnoses", "social_care"], policy_text=POLICY,
                                 expires="2025-12-31")
    if researcher.strip():
        assert researcher not in str(caught.value)
    assert populated.catalog.project("p1") is None


@pytest.mark.parametrize("organisation", BAD_NAMES)
def test_when_the_submitting_organisation_is_malformed_then_the_submission_is_refused(
    store: Store, organisation: str
) -> None:
    with pytest.raises(InvalidInput, match="submitting organisation must be"):
        store.begin_submission(dataset="gp_diagnoses", policy_name="gp", organisation=organisation)


@given(st.text(max_size=70))
def test_when_a_name_is_accepted_then_a_certificate_can_carry_it(name: str) -> None:
    try:
        check_organisation(name, field="x")
    except InvalidInput:
        assert not ORG_RE.fullmatch(name)
    else:
        assert spiffe_uri(name, "researcher").endswith(f"/org/{name}/role/researcher")
