"""Projects: validated against the datasets' latest schemas, unique ids, expiry."""

from __future__ import annotations

from datetime import date

import pytest

from pseudogate.core.errors import AlreadyExists, FailedPrecondition, InvalidInput
from pseudogate.gateway import Store
from tests.statements import STATEMENTS

from .helpers import council_columns, gp_columns, ipc, people, submit

POLICY = """\
version: 1
name: p
columns:
  person:                     {action: keep}
  gp_diagnoses.email:         {action: drop}
  gp_diagnoses.date_of_birth: {action: drop}
  gp_diagnoses.sex:           {action: generalise, hierarchy: {type: suppress}}
  gp_diagnoses.diagnosis:     {action: keep}
  social_care.service:        {action: keep}
privacy: {k: 2}
"""


@pytest.fixture
def populated(store: Store) -> Store:
    submit(store, "gp_diagnoses", "gp", "gp-org", ipc(gp_columns(people(5))))
    submit(store, "social_care", "council", "council-org", ipc(council_columns(people(5))))
    return store


def _create(store: Store, *, policy: str = POLICY, project_id: str = "p1",
            datasets: tuple[str, ...] = ("gp_diagnoses", "social_care"),
            expires: str = "2025-12-31") -> object:
    return store.create_project(**STATEMENTS, project_id=project_id, researcher="uni", datasets=list(datasets),
                                policy_text=policy, policy_files={}, expires=expires)


def test_when_created_then_the_record_names_policy_fingerprint_and_project_key(
    populated: Store,
) -> None:
    record = _create(populated)
    assert record == populated.project("p1")
    assert record.project_key_id == "pk1" and record.expires == date(2025, 12, 31)
    assert record.datasets == ("gp_diagnoses", "social_care") and record.domain == "person"
    assert populated.project_policy("p1").fingerprint == record.policy_fingerprint


def test_when_id_exists_then_already_exists(populated: Store) -> None:
    _create(populated)
    with pytest.raises(AlreadyExists):
        _create(populated)


def test_when_a_dataset_has_no_version_then_failed_precondition(populated: Store) -> None:
    with pytest.raises(FailedPrecondition, match="'ae_visits' has no submitted version"):
        _create(populated, datasets=("gp_diagnoses", "ae_visits"))


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("  social_care.service:        {action: keep}\n", "", "'social_care.service' is not named"),
        ("  person:                     {action: keep}\n",
         "  person:                     {action: drop}\n", "'person' holds project tokens"),
        ("  gp_diagnoses.diagnosis:     {action: keep}\n",
         "  gp_diagnoses.diagnosis:     {action: tokenise, kind: text}\n", "cannot be tokenised"),
        ("  social_care.service:        {action: keep}\n",
         "  social_care.service:        {action: generalise, hierarchy: {type: suppress}}\n",
         "must come from the project's first dataset"),
        ("privacy: {k: 2}\n", "", "no 'privacy' section"),
        ("privacy: {k: 2}\n", "privacy: {k: 1}\n", "at least 2"),
    ],
    ids=["unlisted column", "person dropped", "tokenise", "qi from second dataset", "no privacy",
         "k below 2"],
)
def test_when_policy_does_not_fit_then_invalid_input(
    populated: Store, old: str, new: str, message: str
) -> None:
    assert old in POLICY
    with pytest.raises(InvalidInput, match=message):
        _create(populated, policy=POLICY.replace(old, new))
    assert populated.catalog.project("p1") is None


def test_when_policy_has_no_privacy_model_then_invalid_input(populated: Store) -> None:
    policy = POLICY.replace("{action: generalise, hierarchy: {type: suppress}}", "{action: keep}")
    with pytest.raises(InvalidInput, match="no privacy section; an extract policy needs k"):
        _create(populated, policy=policy.replace("privacy: {k: 2}\n", ""))


@pytest.mark.parametrize("expires", ["2025-05-31", "31/12/2025", "2025-13-01"])
def test_when_expiry_is_past_or_malformed_then_invalid_input(populated: Store, expires: str) -> None:
    with pytest.raises(InvalidInput, match="expiry"):
        _create(populated, expires=expires)


def test_when_expiry_is_today_then_project_is_created(populated: Store) -> None:
    assert _create(populated, expires="2025-06-01").expires == date(2025, 6, 1)
