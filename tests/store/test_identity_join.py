"""Exact projects over datasets with linkage encodings (issue 10): the encoding is never an
extract column, and records without an NHS number (empty tokens) never link to each other."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from pseudogate.core.keyring import Keyring
from pseudogate.core.names import ENCODING_COLUMN
from pseudogate.core.policy import Policy, parse_policy
from pseudogate.gateway import ColumnInfo, Store, VersionRecord
from pseudogate.gateway.join import join_layout, left_join
from tests.statements import STATEMENTS

from .helpers import Clock, ipc, linkage_token, project_token, submit
from .test_extract import identity

CARE = """\
version: 1
name: care
columns:
  nhs:      {action: tokenise, kind: nhs_number, domain: person}
  forename: {action: identify, field: given_name}
  dob:      {action: identify, field: date_of_birth}
  service:  {action: keep}
"""

EXTRACT = """\
version: 1
name: both
columns:
  person:           {action: keep}
  care_a.service:   {action: keep}
  care_b.service:   {action: keep}
privacy: {k: 2, suppression_limit: 1}
"""

NUMBER = "9434765919"


@pytest.fixture
def raw_store(data_dir: Path, keyring: Keyring, clock: Clock) -> Iterator[Store]:
    policies: dict[str, Policy] = {"care": parse_policy(CARE, origin="care.yaml")}
    with Store.open(data_dir, keyring=keyring, policies=policies, clock=clock,
                    anonymiser=identity) as opened:
        yield opened


def _version(dataset: str, columns: tuple[ColumnInfo, ...]) -> VersionRecord:
    return VersionRecord(dataset=dataset, version=1, file=f"datasets/{dataset}/1.parquet", rows=1,
                         columns=columns, policy_name="p", policy_fingerprint="f",
                         linkage_key_id="lk1", organisation="o", created_at="2025-01-01T00:00:00Z")


def test_when_a_version_has_an_encoding_then_join_layout_leaves_it_out() -> None:
    encoded = (ColumnInfo("nhs", "tokenise", "person", "nhs_number"), ColumnInfo("service", "keep"),
               ColumnInfo(ENCODING_COLUMN, "encode", None, "pg-fbf-v1"))
    layout = join_layout([_version("care_a", encoded), _version("care_b", encoded)],
                         domain="person")
    assert layout.header == ["person", "care_a.service", "care_b.service"]
    assert layout.link_columns == ("nhs", "nhs")
    assert not any(ENCODING_COLUMN in name for name in layout.header)


def test_when_keys_are_empty_then_left_join_matches_nothing_with_them() -> None:
    left = pa.array(["a", "", "b", "", "a"])
    right = pa.array(["", "a", "", "c", ""])
    left_idx, right_idx = left_join(left, right)
    assert left_idx.tolist() == [0, 1, 2, 3, 4]
    assert right_idx.to_pylist() == [1, None, None, None, 1]


def test_when_only_the_right_side_has_empty_keys_then_they_are_simply_unmatched() -> None:
    left_idx, right_idx = left_join(pa.array(["a", "b"]), pa.array(["", "b", ""]))
    assert (left_idx.tolist(), right_idx.to_pylist()) == ([0, 1], [None, 1])


def test_when_an_exact_project_joins_records_without_nhs_numbers_then_none_link_to_each_other(
    raw_store: Store,
) -> None:
    submit(raw_store, "care_a", "care", "council",
           ipc({"nhs": [NUMBER, "", ""], "forename": ["Siân", "Gareth", "Mei"],
                "dob": ["1970-01-01", "1980-02-03", ""], "service": ["a1", "a2", "a3"]}))
    submit(raw_store, "care_b", "care", "council",
           ipc({"nhs": ["", NUMBER, ""], "forename": ["Gareth", "Siân", "Mei"],
                "dob": ["1980-02-03", "1970-01-01", ""], "service": ["b1", "b2", "b3"]}))
    raw_store.create_project(**STATEMENTS, project_id="p1", researcher="uni", datasets=["care_a", "care_b"],
                             policy_text=EXTRACT, policy_files={}, expires="2025-12-31")
    extract = raw_store.build_extract("p1", organisation="uni")
    assert extract.header == ["person", "care_a.service", "care_b.service"]
    person = project_token("p1", linkage_token(NUMBER))
    assert extract.table.values.tolist() == [
        [person, "a1", "b2"],
        ["", "a2", ""],  # no number: not linked (exact linkage has nothing else to go on)
        ["", "a3", ""],
    ]
    assert extract.manifest.rows == 3


def test_when_records_have_no_nhs_number_then_the_linkage_report_counts_no_person_for_them(
    raw_store: Store,
) -> None:
    submit(raw_store, "care_a", "care", "council",
           ipc({"nhs": [NUMBER, "", ""], "forename": ["a", "b", "c"], "dob": ["", "", ""],
                "service": ["x", "y", "z"]}))
    submit(raw_store, "care_b", "care", "council",
           ipc({"nhs": ["", ""], "forename": ["d", "e"], "dob": ["", ""], "service": ["x", "y"]}))
    report = raw_store.linkage_report()
    assert report["datasets"]["care_a"] == {"version": 1, "records": 3, "people": 1}
    assert report["datasets"]["care_b"] == {"version": 1, "records": 2, "people": 0}
    assert report["overlap"] == {"care_a|care_b": 0}


def test_when_people_opted_out_then_records_without_a_number_are_neither_removed_nor_counted(
    raw_store: Store,
) -> None:
    other = "4010232137"
    submit(raw_store, "care_a", "care", "council",
           ipc({"nhs": [NUMBER, "", other, ""], "forename": ["a", "b", "c", "d"],
                "dob": ["", "", "", ""], "service": ["a1", "a2", "a3", "a4"]}))
    submit(raw_store, "care_b", "care", "council",
           ipc({"nhs": ["", other], "forename": ["e", "f"], "dob": ["", ""],
                "service": ["b1", "b2"]}))
    raw_store.import_optouts([NUMBER])
    raw_store.create_project(**STATEMENTS, project_id="p1", researcher="uni", datasets=["care_a", "care_b"],
                             policy_text=EXTRACT, policy_files={}, expires="2025-12-31")
    extract = raw_store.build_extract("p1", organisation="uni")
    person = project_token("p1", linkage_token(other))
    assert extract.table.values.tolist() == [["", "a2", ""], [person, "a3", "b2"], ["", "a4", ""]]
    assert extract.manifest.optouts_removed == "<10"
