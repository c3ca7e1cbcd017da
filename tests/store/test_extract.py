"""Extracts: the join, project tokens, opt-outs, expiry, access, the signed manifest."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pseudogate.core.errors import FailedPrecondition, PermissionDenied
from pseudogate.core.keyring import Keyring, Purpose
from pseudogate.core.manifest import MANIFEST_FIELDS, ManifestKeyIds
from pseudogate.core.policy import Policy, parse_policy
from pseudogate.gateway import Store
from tests.statements import STATEMENTS

from .helpers import (
    COUNCIL_POLICY,
    SIGNING_KEY,
    Clock,
    council_columns,
    gp_columns,
    ipc,
    linkage_token,
    people,
    project_token,
    submit,
)

EXTRACT_POLICY = """\
version: 1
name: linked-extract
columns:
  person:                       {action: keep}
  gp_diagnoses.email:           {action: drop}
  gp_diagnoses.date_of_birth:   {action: generalise, hierarchy: {type: date, levels: [year, 10y]}}
  gp_diagnoses.sex:             {action: generalise, hierarchy: {type: suppress}}
  gp_diagnoses.diagnosis:       {action: keep, sensitive: true}
  social_care.service:          {action: keep}
privacy:
  k: 2
  l: 2
  suppression_limit: 1
"""

IDENTITY_POLICY = """\
version: 1
name: everything
columns:
  person:                       {action: keep}
  gp_diagnoses.email:           {action: keep}
  gp_diagnoses.date_of_birth:   {action: keep}
  gp_diagnoses.sex:             {action: generalise, hierarchy: {type: suppress}}
  gp_diagnoses.diagnosis:       {action: keep}
  social_care.service:          {action: keep}
privacy:
  k: 2
  suppression_limit: 1
"""


@dataclass
class _Result:
    table: pd.DataFrame
    report: dict[str, Any]


def identity(table: pd.DataFrame, policy: Policy, **options: Any) -> _Result:
    """A stand-in anonymiser that releases everything (to test the join exactly)."""
    assert options["person_column"] == "person"
    report = {"k_achieved": 1, "l_achieved": None, "suppressed": 0, "loss": 0.0}
    return _Result(table.copy(), report)


@pytest.fixture
def raw_store(
    data_dir: Path, keyring: Keyring, policies: dict[str, Policy], clock: Clock
) -> Iterator[Store]:
    with Store.open(data_dir, keyring=keyring, policies=policies, clock=clock,
                    anonymiser=identity) as opened:
        yield opened


def _populate(store: Store, *, gp: list[dict[str, str]], council: list[dict[str, str]]) -> None:
    submit(store, "gp_diagnoses", "gp", "gp-org", ipc(gp_columns(gp)))
    submit(store, "social_care", "council", "council-org", ipc(council_columns(council)))


def _project(store: Store, project_id: str = "p1", *, policy: str = EXTRACT_POLICY,
             researcher: str = "uni", expires: str = "2025-12-31") -> None:
    store.create_project(**STATEMENTS, project_id=project_id, researcher=researcher,
                         datasets=["gp_diagnoses", "social_care"], policy_text=policy,
                         policy_files={}, expires=expires)


def test_when_joined_then_rows_follow_a_sql_left_join_from_the_first_dataset(
    raw_store: Store,
) -> None:
    folk = people(6)
    gp = [folk[0], folk[1], folk[0], folk[2], folk[3]]  # folk[0] twice
    council = [folk[0], folk[4], folk[0], folk[2], folk[5]]  # folk[0] twice, folk[1] absent
    _populate(raw_store, gp=gp, council=council)
    _project(raw_store, policy=IDENTITY_POLICY)
    extract = raw_store.build_extract("p1", organisation="uni")
    assert extract.header == [
        "person", "gp_diagnoses.email", "gp_diagnoses.date_of_birth", "gp_diagnoses.sex",
        "gp_diagnoses.diagnosis", "social_care.service",
    ]
    gp_cols, council_cols = gp_columns(gp), council_columns(council)
    expected: list[list[str]] = []
    for i, g in enumerate(gp):  # the reference: a nested-loop LEFT JOIN
        matches = [j for j, c in enumerate(council) if c["nhs_number"] == g["nhs_number"]]
        link = linkage_token(g["nhs_number"])
        left = [project_token("p1", link), project_token("p1", linkage_token(g["email"], "email")),
                g["date_of_birth"], g["sex"], gp_cols["diagnosis"][i]]
        expected.extend([left + [council_cols["service"][j]] for j in matches] or [left + [""]])
    assert extract.table.values.tolist() == expected
    assert extract.manifest.rows == len(expected) == 7


def test_when_two_projects_extract_then_tokens_link_within_and_not_across(
    raw_store: Store,
) -> None:
    folk = people(8)
    _populate(raw_store, gp=folk[:6], council=folk[2:])
    _project(raw_store, "alpha", policy=IDENTITY_POLICY)
    _project(raw_store, "beta", policy=IDENTITY_POLICY, researcher="other-uni")
    a1 = raw_store.build_extract("alpha", organisation="uni")
    a2 = raw_store.build_extract("alpha", organisation="uni")
    b = raw_store.build_extract("beta", organisation="other-uni")
    assert a1.table["person"].tolist() == a2.table["person"].tolist()  # stable within a project
    assert set(a1.table["person"]).isdisjoint(b.table["person"])
    assert set(a1.table["gp_diagnoses.email"]).isdisjoint(b.table["gp_diagnoses.email"])
    stored = set(raw_store.read_version("gp_diagnoses").column("nhs_number").to_pylist())
    assert stored.isdisjoint(a1.table["person"])  # no linkage token leaves the gateway
    assert a1.manifest.key_ids == ManifestKeyIds(linkage="lk1", project="pk1", signing="sk1")


def test_when_people_opted_out_then_they_are_removed_and_counted(raw_store: Store) -> None:
    folk = people(30)
    _populate(raw_store, gp=folk[:25] + folk[:3], council=folk[10:])
    _project(raw_store, policy=IDENTITY_POLICY)
    before = raw_store.build_extract("p1", organisation="uni")
    assert before.manifest.optout_snapshot is None
    assert before.manifest.optouts_removed == "<10"

    raw_store.import_optouts([f["nhs_number"] for f in folk[:12]])  # snapshot 1: 12 people
    latest = [f["nhs_number"] for f in folk[:3]] + [folk[28]["nhs_number"]]
    snapshot = raw_store.import_optouts(latest)  # snapshot 2 replaces snapshot 1
    assert snapshot.id == 2 and snapshot.count == 4
    after = raw_store.build_extract("p1", organisation="uni")
    gone = {project_token("p1", linkage_token(f["nhs_number"])) for f in folk[:3]}
    assert gone & set(before.table["person"]) == gone
    assert not gone & set(after.table["person"])
    assert len(after.table) == len(before.table) - 6  # folk[0..2] had two GP rows each
    assert after.manifest.optout_snapshot == 2
    assert after.manifest.optouts_removed == "<10"  # 3 people; folk[28] is not a GP patient

    raw_store.import_optouts([f["nhs_number"] for f in folk[:12]])
    many = raw_store.build_extract("p1", organisation="uni")
    assert many.manifest.optouts_removed == 12
    assert many.manifest.optout_snapshot == 3


def test_when_project_expires_then_the_expiry_date_itself_is_allowed(
    raw_store: Store, clock: Clock
) -> None:
    _populate(raw_store, gp=people(4), council=people(4))
    _project(raw_store, expires="2025-06-30", policy=IDENTITY_POLICY)
    assert raw_store.build_extract("p1", organisation="uni", today=date(2025, 6, 30)).rows == 4
    with pytest.raises(FailedPrecondition, match="expired on 2025-06-30"):
        raw_store.build_extract("p1", organisation="uni", today=date(2025, 7, 1))
    clock.now = clock.now.replace(year=2025, month=7, day=1, hour=0, minute=0, second=1)
    with pytest.raises(FailedPrecondition, match="expired"):
        raw_store.build_extract("p1", organisation="uni")


def test_when_project_is_unknown_or_not_the_callers_then_the_refusal_is_the_same(
    raw_store: Store,
) -> None:
    _populate(raw_store, gp=people(4), council=people(4))
    _project(raw_store, policy=IDENTITY_POLICY)
    with pytest.raises(PermissionDenied) as other:
        raw_store.build_extract("p1", organisation="someone-else")
    with pytest.raises(PermissionDenied) as unknown:
        raw_store.build_extract("p9", organisation="someone-else")
    assert str(other.value).replace("p1", "X") == str(unknown.value).replace("p9", "X")
    assert raw_store.build_extract("p1", organisation=None).rows == 4  # insecure mode: anyone


def test_when_manifest_is_checked_then_signature_verifies_and_hash_recomputes_from_csv(
    store: Store,
) -> None:
    folk = people(40)
    _populate(store, gp=folk[:30], council=folk[20:])
    _project(store)
    extract = store.build_extract("p1", organisation="uni")
    manifest = json.loads(extract.manifest_json())
    assert list(manifest) == list(MANIFEST_FIELDS)
    assert manifest["datasets"] == [{"name": "gp_diagnoses", "version": 1},
                                    {"name": "social_care", "version": 1}]
    assert manifest["policy_fingerprint"] == store.project("p1").policy_fingerprint
    assert manifest["created_at"] == "2025-06-01T12:00:00Z"
    assert manifest["k_achieved"] >= 2 and manifest["l_achieved"] >= 2
    assert manifest["rows"] == extract.rows and manifest["suppressed"] >= 0
    # The signature, checked with the raw Ed25519 key built from the seed (not our verifier).
    public = Ed25519PrivateKey.from_private_bytes(SIGNING_KEY).public_key()
    body = {k: v for k, v in manifest.items() if k != "signature"}
    signed = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    public.verify(base64.b64decode(manifest["signature"]), signed.encode("utf-8"))
    # The content hash, recomputed from a CSV copy of the extract.
    text = io.StringIO()
    extract.table.to_csv(text, index=False, lineterminator="\n")
    digest = hashlib.sha256()
    for row in csv.reader(io.StringIO(text.getvalue())):
        digest.update((json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n").encode())
    assert manifest["content_sha256"] == digest.hexdigest()


def test_when_extracted_with_the_engine_then_k_and_l_count_distinct_people(store: Store) -> None:
    folk = people(60)
    gp = folk + folk[:20]  # some people have two rows
    _populate(store, gp=gp, council=folk[30:])
    _project(store)
    extract = store.build_extract("p1", organisation="uni")
    qis = ["gp_diagnoses.date_of_birth", "gp_diagnoses.sex"]
    classes = extract.table.groupby(qis)
    assert classes["person"].nunique().min() == extract.manifest.k_achieved >= 2
    assert classes["gp_diagnoses.diagnosis"].nunique().min() >= extract.manifest.l_achieved
    assert "gp_diagnoses.email" not in extract.header


def test_when_streamed_then_arrow_messages_reassemble_the_extract(raw_store: Store) -> None:
    _populate(raw_store, gp=people(25), council=people(25))
    _project(raw_store, policy=IDENTITY_POLICY)
    extract = raw_store.build_extract("p1", organisation="uni")
    messages = list(extract.iter_arrow_ipc(rows_per_message=7))
    assert len(messages) == 4
    parts = [pa.ipc.open_stream(m).read_all() for m in messages]
    assert pa.concat_tables(parts).equals(extract.arrow)
    assert all(f.type == pa.string() for f in extract.arrow.schema)
    small = list(extract.iter_arrow_ipc(max_message_bytes=1500))  # split until each fits
    assert len(small) > 4 and all(len(m) <= 1500 for m in small)
    assert pa.concat_tables([pa.ipc.open_stream(m).read_all() for m in small]).equals(
        extract.arrow)


def test_when_a_dataset_has_no_column_under_the_project_domain_then_project_is_refused(
    raw_store: Store,
) -> None:
    _populate(raw_store, gp=people(4), council=people(4))
    with pytest.raises(FailedPrecondition, match="'social_care' .* 0 columns tokenised under "
                       "domain 'email'"):
        raw_store.create_project(**STATEMENTS, project_id="p2", researcher="uni", datasets=["gp_diagnoses", "social_care"],
                     policy_text=IDENTITY_POLICY, policy_files={}, expires="2025-12-31",
                     domain="email")


def test_when_datasets_used_different_linkage_keys_then_extract_is_refused(
    data_dir: Path, keyring: Keyring, policies: dict[str, Policy], clock: Clock
) -> None:
    store = Store.open(data_dir, keyring=keyring, policies=policies, clock=clock,
                       anonymiser=identity)
    _populate(store, gp=people(4), council=people(4))
    _project(store, policy=IDENTITY_POLICY)
    keyring.promote(keyring.add(Purpose.LINKAGE).id)  # rotation: a new primary linkage key
    submit(store, "social_care", "council", "council-org", ipc(council_columns(people(4))))
    with pytest.raises(FailedPrecondition, match="different linkage keys"):
        store.build_extract("p1", organisation="uni")


def test_when_optouts_used_another_linkage_key_then_extract_is_refused(
    data_dir: Path, keyring: Keyring, policies: dict[str, Policy], clock: Clock
) -> None:
    store = Store.open(data_dir, keyring=keyring, policies=policies, clock=clock,
                       anonymiser=identity)
    _populate(store, gp=people(4), council=people(4))
    _project(store, policy=IDENTITY_POLICY)
    keyring.promote(keyring.add(Purpose.LINKAGE).id)
    store.import_optouts([people(1)[0]["nhs_number"]])
    with pytest.raises(FailedPrecondition, match="opt-out snapshot 1 was tokenised under"):
        store.build_extract("p1", organisation="uni")


def test_when_three_datasets_join_then_matches_multiply_per_first_dataset_row(
    raw_store: Store,
) -> None:
    folk = people(6)
    gp, council, ae = folk[:4], [folk[0], folk[0], folk[1]], [folk[0], folk[2], folk[2], folk[5]]
    _populate(raw_store, gp=gp, council=council)
    submit(raw_store, "ae_visits", "council", "council-org", ipc(council_columns(ae)))
    policy = IDENTITY_POLICY.replace("privacy:", "  ae_visits.service: {action: keep}\nprivacy:")
    raw_store.create_project(**STATEMENTS, project_id="p3", researcher="uni",
                             datasets=["gp_diagnoses", "social_care", "ae_visits"],
                             policy_text=policy, policy_files={}, expires="2025-12-31")
    extract = raw_store.build_extract("p3", organisation="uni")
    assert extract.header[-2:] == ["social_care.service", "ae_visits.service"]
    def count(rows: list[dict[str, str]], person: dict[str, str]) -> int:
        return max(1, sum(r["nhs_number"] == person["nhs_number"] for r in rows))
    assert extract.rows == sum(count(council, p) * count(ae, p) for p in gp) == 2 + 1 + 2 + 1
    tokens = [project_token("p3", linkage_token(p["nhs_number"])) for p in gp]
    assert extract.table["person"].tolist() == [tokens[0]] * 2 + [tokens[1]] + [tokens[2]] * 2 + [
        tokens[3]]
    assert extract.table["ae_visits.service"].tolist() == ["S0", "S0", "", "S1", "S2", ""]


def test_when_a_newer_version_no_longer_fits_the_policy_then_extract_is_refused(
    raw_store: Store, policies: dict[str, Policy]
) -> None:
    _populate(raw_store, gp=people(4), council=people(4))
    _project(raw_store, policy=IDENTITY_POLICY)
    raw_store.policies["council_v2"] = parse_policy(COUNCIL_POLICY.replace(
        "  service:      {action: keep}\n", "  service:      {action: keep}\n  team: {action: keep}\n"))
    columns = council_columns(people(4))
    columns["team"] = ["t"] * 4
    submit(raw_store, "social_care", "council_v2", "council-org", ipc(columns))
    with pytest.raises(FailedPrecondition, match="'social_care.team' is not named"):
        raw_store.build_extract("p1", organisation="uni")
