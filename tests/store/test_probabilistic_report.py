"""Records without identity fields in probabilistic linkage, and the linkage report's
probabilistic overlap (counts only)."""

from __future__ import annotations

import random

import pytest

from pseudogate.gateway import Store
from pseudogate.tools.synthetic import Person, make_people

from .test_probabilistic import (
    EXTRACT,
    _nhs_person,
    _project,
    identity_of,
    put_version,
    raw_store,  # noqa: F401 - the fixture behind `store`
    typo,
)

THREE = EXTRACT.replace("  gp.diagnosis:        {action: keep}\n",
                        "  gp.diagnosis:        {action: keep}\n"
                        "  council.package:     {action: keep}\n")


@pytest.fixture(scope="module")
def folk() -> list[Person]:
    return make_people(300, seed=8)


@pytest.fixture
def store(raw_store: Store) -> Store:  # noqa: F811 - the imported fixture
    return raw_store


def _three_providers(store: Store, folk: list[Person]) -> None:
    """GP: people 0-199, NHS numbers and identity fields. Council: people 0-199 again, NHS
    numbers only (no identity fields at all). Fire: people 100-249, identity fields only."""
    gp, fire = folk[:200], folk[100:250]
    put_version(store, "gp", kept={"diagnosis": ["D"] * 200},
                nhs=[p.nhs_number for p in gp], identity_fields=identity_of(gp))
    put_version(store, "council", kept={"package": ["P"] * 200},
                nhs=[p.nhs_number for p in gp])
    put_version(store, "fire", kept={"visit": ["V"] * 150},
                identity_fields=typo(fire, random.Random(4)))


def test_when_a_dataset_has_no_identity_fields_then_it_does_not_keep_others_apart(
    store: Store, folk: list[Person]
) -> None:
    """A council record (NHS number only) of a GP patient is that patient's record: a fire
    visit linked to the GP record reaches the council record too, as if the council's
    records were not there (an all-missing record must not dilute the clusters)."""
    _three_providers(store, folk)
    _project(store, datasets=["fire", "gp", "council"], policy=THREE)
    table = store.build_extract("p1", organisation="uni").table
    both = folk[100:200]
    linked = [i for i, p in enumerate(both) if table["person"][i] == _nhs_person("p1", p)]
    assert len(linked) >= 95
    assert all(table["council.package"][i] == "P" for i in linked)


def test_when_datasets_have_identity_fields_then_the_report_adds_the_probabilistic_overlap(
    store: Store, folk: list[Person]
) -> None:
    _three_providers(store, folk)
    report = store.linkage_report()
    assert report["overlap"] == {"council|gp": 200}  # exact: fire has no NHS numbers
    assert report["datasets"]["fire"]["people"] is None
    prob = report["probabilistic"]
    assert (prob["encoding"], prob["threshold"], prob["not_linked"]) == ("pg-fbf-v1", 0.5, {})
    assert prob["datasets"]["gp"] == {"people": 200}
    assert prob["datasets"]["council"] == {"people": 200}
    assert 145 <= prob["datasets"]["fire"]["people"] <= 150
    assert prob["overlap"]["council|gp"] == 200
    assert 95 <= prob["overlap"]["fire|gp"] <= 100
    assert prob["overlap"]["council|fire"] == prob["overlap"]["fire|gp"]


def test_when_no_dataset_has_identity_fields_then_the_report_is_as_before(
    store: Store, folk: list[Person]
) -> None:
    put_version(store, "gp", kept={"diagnosis": ["D"] * 10},
                nhs=[p.nhs_number for p in folk[:10]])
    assert set(store.linkage_report()) == {"datasets", "overlap"}


def test_when_a_dataset_was_made_under_another_key_then_the_report_says_it_is_not_linked(
    store: Store, folk: list[Person]
) -> None:
    _three_providers(store, folk)
    put_version(store, "ambulance", kept={"call": ["C"] * 5}, key_id="lk0")
    prob = store.linkage_report()["probabilistic"]
    assert "ambulance" not in prob["datasets"]
    assert prob["not_linked"] == {
        "ambulance": "made under linkage key 'lk0', not the current 'lk1': resubmit to link it"}
    assert prob["overlap"]["council|gp"] == 200
