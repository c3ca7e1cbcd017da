"""The linkage report: counts of records, people and shared people only."""

from __future__ import annotations

import json

from pseudogate.gateway import Store

from .helpers import council_columns, gp_columns, ipc, people, submit


def test_when_providers_share_people_then_report_counts_them(store: Store) -> None:
    folk = people(50)
    submit(store, "gp_diagnoses", "gp", "gp-org", ipc(gp_columns(folk[:30] + folk[:5])))
    submit(store, "social_care", "council", "council-org", ipc(council_columns(folk[20:])))
    submit(store, "ae_visits", "council", "council-org", ipc(council_columns(folk[45:])))
    report = store.linkage_report()
    assert report == {
        "datasets": {
            "ae_visits": {"version": 1, "records": 5, "people": 5},
            "gp_diagnoses": {"version": 1, "records": 35, "people": 30},
            "social_care": {"version": 1, "records": 30, "people": 30},
        },
        "overlap": {
            "ae_visits|gp_diagnoses": 0,
            "ae_visits|social_care": 5,
            "gp_diagnoses|social_care": 10,
        },
    }
    text = json.dumps(report)
    assert "lk1_" not in text and not any(p["nhs_number"] in text for p in folk)


def test_when_nothing_is_stored_then_report_is_empty(store: Store) -> None:
    assert store.linkage_report() == {"datasets": {}, "overlap": {}}
