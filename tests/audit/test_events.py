from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pseudogate.audit import (
    EVENT_FIELDS,
    AuditEvent,
    build_event,
    rfc3339,
    safe_name,
    validate_event,
)
from pseudogate.audit.chain import canonical_bytes
from pseudogate.audit.events import (
    DETAIL_NAMES,
    OPTIONAL_FIELDS,
    details_ok,
    now_rfc3339,
    prepare_event,
)
from pseudogate.core.errors import InvalidInput

from .conftest import sample_event


def test_when_built_then_event_has_every_field_but_seq_and_time() -> None:
    event = prepare_event(sample_event(3))
    assert list(event) == [f for f in EVENT_FIELDS if f not in ("seq", "time")]
    assert event["counts"] == {"values": 3}
    assert event["key_ids"] == ["lk-1"]


def test_when_key_ids_repeat_then_they_are_sorted_once() -> None:
    event = build_event(
        organisation="ops", role="admin", method="/pseudogate.v1.AdminService/ListKeys",
        status="OK", key_ids=["sk-2", "lk-1", "sk-2"],
    )
    assert prepare_event(event)["key_ids"] == ["lk-1", "sk-2"]


def test_when_key_ids_is_a_mapping_then_it_is_kept() -> None:
    event = build_event(
        organisation="uni-bangor", role="researcher",
        method="/pseudogate.v1.ExtractService/CreateExtract", status="OK",
        key_ids={"linkage": "lk-1", "project": "pk-1", "signing": "sk-1"},
    )
    assert prepare_event(event)["key_ids"]["project"] == "pk-1"


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
        # Well-formed names that are, or contain, a direct identifier.
        ("9434765919", "project", None),
        ("943-476-5919", "project", None),
        ("LL112AB", "project", None),
        ("study-ll11-2ab", "project", "study-ll11-2ab"),  # no full postcode in it
        ("ll112ab", "dataset", None),
        ("cohort_ll112ab", "dataset", None),
        # Ten digits with a wrong check digit are not an NHS number; a year is not a date.
        ("9434765918", "project", "9434765918"),
        ("asthma-2025", "project", "asthma-2025"),
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
    assert prepare_event(event)["dataset"] is None


@given(
    st.text(min_size=1, max_size=20).filter(
        lambda k: k not in EVENT_FIELDS + OPTIONAL_FIELDS
    )
)
def test_when_an_event_carries_any_other_key_then_it_is_refused(key: str) -> None:
    event = sample_event().to_json_dict()
    event[key] = "x"
    with pytest.raises(InvalidInput, match="forbidden"):
        validate_event(event, complete=False)


@pytest.mark.parametrize("key", ["hash", "signature", "nhs_number", "value", "seq", "time"])
def test_when_an_event_is_built_with_any_other_field_then_it_cannot_be(key: str) -> None:
    fields = {**sample_event().to_json_dict(), key: "9434765919"}
    with pytest.raises(TypeError):
        AuditEvent(**fields)


def test_when_an_event_is_built_then_it_cannot_be_changed() -> None:
    event = sample_event()
    with pytest.raises(AttributeError):
        event.status = "INTERNAL"  # type: ignore[misc]


@pytest.mark.parametrize("key", ["hash", "signature", "nhs_number", "value", "token"])
def test_when_an_event_carries_a_named_forbidden_key_then_it_is_refused(key: str) -> None:
    event = {**sample_event().to_json_dict(), key: "9434765919"}
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
    event = {**sample_event().to_json_dict(), field: value}
    with pytest.raises(InvalidInput, match=field) as info:
        validate_event(event, complete=False)
    assert "9434765919" not in str(info.value)


def test_when_complete_event_lacks_seq_then_it_is_refused() -> None:
    with pytest.raises(InvalidInput, match="seq"):
        validate_event({**sample_event().to_json_dict(), "time": "2025-01-01T00:00:00.000Z"})


def test_when_time_is_formatted_then_it_is_rfc3339_utc_with_z() -> None:
    moment = dt.datetime(2025, 6, 1, 10, 30, 0, 125000, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert rfc3339(moment) == "2025-06-01T09:30:00.125Z"


def test_when_time_is_naive_then_it_is_refused() -> None:
    with pytest.raises(ValueError):
        rfc3339(dt.datetime(2025, 6, 1))


# -- prepare_event: what AuditLog.append records (memoised on the event's shape) -----------------


def _reference_prepare(event: AuditEvent) -> dict:
    """prepare_event without its memo: sanitise names, validate, order the fields."""
    checked = event.to_json_dict()
    for kind in ("dataset", "project"):
        if kind in checked and (checked[kind] is None or isinstance(checked[kind], str)):
            checked[kind] = safe_name(checked[kind], kind=kind)
    validate_event(checked, complete=False)
    return {f: checked[f] for f in EVENT_FIELDS if f not in ("seq", "time")}


def _outcome(prepare: Callable[[AuditEvent], dict], event: AuditEvent) -> object:
    try:
        return ("ok", prepare(event))
    except InvalidInput as exc:
        return ("refused", str(exc))


def _mostly(valid: list[object], invalid: list[object]) -> st.SearchStrategy[object]:
    """Valid values four times as often, so that most events get as far as the memo."""
    return st.sampled_from(valid * 4 + invalid)


_counts = st.dictionaries(
    _mostly(["values", "invalid", "rows"], ["Rows"]),
    st.one_of(st.integers(0, 10**6), st.integers(-2, -1), st.booleans(), st.just(1.5)),
    max_size=3,
)
_events = st.builds(
    AuditEvent,
    organisation=_mostly(["gp-denbigh", "", "uni-bangor"], ["Bad Org", "x" * 70]),
    role=_mostly(["provider", "auditor", ""], ["Root"]),
    method=_mostly(["/pseudogate.v1.TokenisationService/Tokenise"], ["bad"]),
    # Malformed names are not refused: they become null, memoised or not.
    dataset=st.sampled_from([None, "gp_diagnoses", "Jane Smith 9434765919", "", "a b", ["x"]]),
    project=st.sampled_from([None, "asthma-2025", "a b", "Jane Smith"]),
    policy_fingerprint=_mostly([None, "sha256:abc"], ["no spaces allowed"]),
    key_ids=_mostly([["lk-1"], ("lk-1",), {"nhs_number": "lk-1"}], [{"x": "NOT OK"}, "lk-1"]),
    counts=_counts,
    status=_mostly(["OK", "PERMISSION_DENIED"], ["MAYBE"]),
)


@given(first=_events, second=_events)
def test_when_events_repeat_then_the_memo_changes_no_outcome(
    first: AuditEvent, second: AuditEvent
) -> None:
    """Each event is prepared twice (the second time from the memo) and once by the reference."""
    for event in (first, second, first, replace(first, counts=second.counts)):
        assert _outcome(prepare_event, event) == _outcome(_reference_prepare, event)


def test_when_a_malformed_name_recurs_then_it_is_recorded_as_null_every_time() -> None:
    event = replace(sample_event(5), dataset="Jane Smith 9434765919", project="a b")
    first, second = prepare_event(event), prepare_event(event)
    assert first == second
    assert (second["dataset"], second["project"]) == (None, None)


def test_when_a_known_shape_carries_a_bad_count_then_it_is_still_refused() -> None:
    event = sample_event(5)
    prepare_event(event)  # the shape is now memoised
    for bad in (-1, True, 2.0):
        with pytest.raises(InvalidInput, match="counts"):
            prepare_event(replace(event, counts={"values": bad}))


def test_when_prepared_then_the_caller_can_change_its_event_without_changing_the_record() -> None:
    event = replace(sample_event(5), key_ids=["lk-1"])
    prepare_event(event)
    record = prepare_event(event)
    event.counts["values"] = 99  # type: ignore[index]
    event.key_ids.append("lk-2")  # type: ignore[union-attr]
    assert record["counts"] == {"values": 5} and record["key_ids"] == ["lk-1"]


@pytest.mark.parametrize(
    ("ns", "expected"),
    [
        (1_700_000_000_999_999_999, "2023-11-14T22:13:20.999Z"),
        (1_700_000_001_000_000_000, "2023-11-14T22:13:21.000Z"),
        (1_700_000_000_500_000_000, "2023-11-14T22:13:20.500Z"),
        (0, "1970-01-01T00:00:00.000Z"),
    ],
)
def test_when_now_is_stamped_then_it_matches_rfc3339_of_the_same_instant(
    ns: int, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cached per-second prefix must roll over exactly; the order above crosses back."""
    monkeypatch.setattr(time, "time_ns", lambda: ns)
    moment = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=ns // 1000)
    assert now_rfc3339() == expected == rfc3339(moment)


def test_when_a_name_is_malformed_then_the_memo_never_holds_it() -> None:
    """The memo is process memory, not the log, but it keeps only what the log would record."""
    from pseudogate.audit import events

    raw = "Jane Smith 9434765919"
    prepare_event(replace(sample_event(5), dataset=raw))
    prepare_event(replace(sample_event(5), project=raw))
    assert not any(raw in shape for shape in events._SHAPES)


# -- details: what a state change adds (names, integers, ids; never free text) -------------------

_CHANGE = "0123456789abcdef" * 2


def _with_details(details: dict) -> AuditEvent:
    return build_event(
        organisation="ops", role="admin", method="/pseudogate.v1.AdminService/CreateProject",
        status="OK", project="asthma-2025", details=details,
    )


def test_when_an_event_has_no_details_then_its_canonical_bytes_are_as_before() -> None:
    record = prepare_event(sample_event(3))
    assert "details" not in record
    assert b"details" not in canonical_bytes({**record, "seq": 1, "time": "2025-06-01T09:00:00.000Z"})


def test_when_a_project_is_described_then_its_details_are_recorded_as_given() -> None:
    details = {
        "change": _CHANGE, "researcher": "uni-bangor", "datasets": ["gp_diagnoses", "council_care"],
        "domain": "person", "expires": "2027-03-31",
    }
    assert prepare_event(_with_details(details))["details"] == details


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("researcher", "Dr Jane Smith"),
        ("researcher", "9434765919"),  # matches the organisation pattern, but is an NHS number
        ("domain", "Person Domain"),
        ("domain", "ll112ab"),
    ],
)
def test_when_a_detail_name_is_free_text_or_an_identifier_then_it_is_recorded_as_null(
    name: str, value: str
) -> None:
    event = prepare_event(_with_details({"change": _CHANGE, name: value}))
    assert event["details"][name] is None
    assert value not in repr(event)


def test_when_a_dataset_in_the_list_is_an_identifier_then_only_it_becomes_null() -> None:
    event = prepare_event(_with_details({"datasets": ["gp_diagnoses", "ll112ab", "Jane Doe"]}))
    assert event["details"]["datasets"] == ["gp_diagnoses", None, None]


@pytest.mark.parametrize(
    "details",
    [
        {"note": "anything"},
        {"change": "not-hex"},
        {"change": _CHANGE.upper()},
        {"version": -1},
        {"version": True},
        {"version": "3"},
        {"versions": [1, "2"]},
        {"expires": "next tuesday"},
        {"content_sha256": "9434765919"},
        {"datasets": "gp_diagnoses"},
        {"datasets": ["gp"] * 65},
        {},
    ],
)
def test_when_details_are_malformed_then_the_event_is_refused_without_the_value(
    details: dict,
) -> None:
    event = replace(sample_event(), details=details)
    with pytest.raises(InvalidInput, match="details") as info:
        prepare_event(event)
    assert "9434765919" not in str(info.value) and "anything" not in str(info.value)


@given(
    st.dictionaries(
        st.sampled_from([*DETAIL_NAMES, "value", "nhs_number"]),
        st.one_of(
            st.text(max_size=30), st.integers(-5, 10**9), st.none(), st.booleans(),
            st.lists(st.one_of(st.text(max_size=12), st.integers(-1, 5)), max_size=3),
        ),
        min_size=1, max_size=4,
    )
)
def test_when_details_are_arbitrary_then_the_log_records_only_names_numbers_and_ids(
    details: dict,
) -> None:
    """Whatever goes in, what comes out is refused or made only of pattern-checked values."""
    try:
        recorded = prepare_event(replace(sample_event(), details=details))["details"]
    except InvalidInput:
        return
    assert details_ok(recorded) and set(recorded) <= set(DETAIL_NAMES)
    for name, value in recorded.items():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str):
                assert " " not in item and "@" not in item
                assert item == details[name] or item in details[name]
