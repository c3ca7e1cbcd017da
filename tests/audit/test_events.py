from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pseudogate.audit import EVENT_FIELDS, build_event, rfc3339, safe_name, validate_event
from pseudogate.errors import InvalidInput

from .conftest import sample_event


def test_when_built_then_event_has_every_field_but_seq_and_time() -> None:
    event = sample_event(3)
    assert set(event) == set(EVENT_FIELDS) - {"seq", "time"}
    assert event["counts"] == {"values": 3}
    assert event["key_ids"] == ["lk-1"]


def test_when_key_ids_repeat_then_they_are_sorted_once() -> None:
    event = build_event(
        organisation="ops", role="admin", method="/pseudogate.v1.AdminService/ListKeys",
        status="OK", key_ids=["sk-2", "lk-1", "sk-2"],
    )
    assert event["key_ids"] == ["lk-1", "sk-2"]


def test_when_key_ids_is_a_mapping_then_it_is_kept() -> None:
    event = build_event(
        organisation="uni-bangor", role="researcher",
        method="/pseudogate.v1.ExtractService/CreateExtract", status="OK",
        key_ids={"linkage": "lk-1", "project": "pk-1", "signing": "sk-1"},
    )
    assert event["key_ids"]["project"] == "pk-1"


@pytest.mark.parametrize(
    ("name", "kind", "expected"),
    [
        ("gp_diagnoses", "dataset", "gp_diagnoses"),
        ("GP Diagnoses", "dataset", None),
        ("943 476 5919", "dataset", None),
        ("", "dataset", None),
        (None, "project", None),
        ("proj-1", "project", "proj-1"),
        ("jane@example.org", "project", None),
    ],
)
def test_when_a_name_is_malformed_then_it_is_recorded_as_null(
    name: str | None, kind: str, expected: str | None
) -> None:
    assert safe_name(name, kind=kind) == expected


def test_when_a_refused_call_names_a_bad_dataset_then_the_event_holds_null() -> None:
    event = build_event(
        organisation="gp-denbigh", role="provider",
        method="/pseudogate.v1.DatasetService/SubmitDataset", status="INVALID_ARGUMENT",
        dataset="Smith, John",
    )
    assert event["dataset"] is None


@given(
    st.text(min_size=1, max_size=20).filter(
        lambda k: k not in EVENT_FIELDS
    )
)
def test_when_an_event_carries_any_other_key_then_it_is_refused(key: str) -> None:
    event = sample_event()
    event[key] = "x"
    with pytest.raises(InvalidInput, match="forbidden"):
        validate_event(event, complete=False)


@pytest.mark.parametrize("key", ["hash", "signature", "nhs_number", "value", "token"])
def test_when_an_event_carries_a_named_forbidden_key_then_it_is_refused(key: str) -> None:
    event = {**sample_event(), key: "9434765919"}
    with pytest.raises(InvalidInput) as info:
        validate_event(event, complete=False)
    assert "9434765919" not in str(info.value)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("organisation", "Jane Smith"),
        ("role", "Provider!"),
        ("method", "Tokenise"),
        ("status", "ok"),
        ("counts", {"values": -1}),
        ("counts", {"values": True}),
        ("counts", {"nhs 9434765919": 1}),
        ("key_ids", ["lk_9434765919_TOKEN"]),
        ("key_ids", "lk-1"),
        ("policy_fingerprint", "a b"),
        ("dataset", "Has Spaces"),
    ],
)
def test_when_a_field_is_malformed_then_the_event_is_refused_without_the_value(
    field: str, value: object
) -> None:
    event = {**sample_event(), field: value}
    with pytest.raises(InvalidInput, match=field) as info:
        validate_event(event, complete=False)
    assert "9434765919" not in str(info.value)


def test_when_complete_event_lacks_seq_then_it_is_refused() -> None:
    with pytest.raises(InvalidInput, match="seq"):
        validate_event({**sample_event(), "time": "2025-01-01T00:00:00.000Z"})


def test_when_time_is_formatted_then_it_is_rfc3339_utc_with_z() -> None:
    moment = dt.datetime(2025, 6, 1, 10, 30, 0, 125000, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert rfc3339(moment) == "2025-06-01T09:30:00.125Z"


def test_when_time_is_naive_then_it_is_refused() -> None:
    with pytest.raises(ValueError):
        rfc3339(dt.datetime(2025, 6, 1))
