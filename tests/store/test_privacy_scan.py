"""After a whole story, no file in the data directory holds a raw identifier."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pseudogate.core.errors import RowErrors
from pseudogate.core.keyring import Keyring
from pseudogate.core.policy import parse_policy
from pseudogate.gateway import Store
from tests.statements import STATEMENTS

from .helpers import GP_POLICY, Clock, council_columns, gp_columns, ipc, people, submit

EXTRACT_POLICY = """\
version: 1
name: scan
columns:
  person:                     {action: keep}
  gp_diagnoses.email:         {action: drop}
  gp_diagnoses.date_of_birth: {action: generalise, hierarchy: {type: date, levels: [year, 10y]}}
  gp_diagnoses.sex:           {action: keep}
  gp_diagnoses.diagnosis:     {action: keep}
  social_care.service:        {action: keep}
privacy: {k: 2, suppression_limit: 0.5}
"""


def readable_forms(path: Path) -> list[bytes]:
    """The file's bytes, plus its decoded content where compression could hide a value."""
    forms = [path.read_bytes()]
    if path.suffix == ".parquet":
        table = pq.read_table(path)
        forms.append("\n".join(str(v) for c in table.columns for v in c.to_pylist()).encode())
    elif path.name == "catalog.sqlite3":
        with sqlite3.connect(path) as db:
            forms.append("\n".join(db.iterdump()).encode())
    return forms


def leaks(data_dir: Path, raw: Iterable[str]) -> dict[str, list[str]]:
    """Files (relative names) that hold any of ``raw``, with the values found."""
    found: dict[str, list[str]] = {}
    values = sorted(set(raw))
    for path in sorted(p for p in data_dir.rglob("*") if p.is_file()):
        forms = readable_forms(path)
        hits = [v for v in values if any(v.encode("utf-8") in f for f in forms)]
        if hits:
            found[str(path.relative_to(data_dir))] = hits
    return found


def test_when_a_policy_keeps_identifiers_then_the_scan_finds_them(
    tmp_path: Path, keyring: Keyring, clock: Clock
) -> None:
    leaky = parse_policy(GP_POLICY.replace("given_name:    {action: drop}",
                                           "given_name:    {action: keep}"))
    store = Store.open(tmp_path / "d", keyring=keyring, policies={"gp": leaky}, clock=clock)
    folk = people(40)
    submit(store, "gp_diagnoses", "gp", "gp-org", ipc(gp_columns(folk)))
    names = {p["given_name"] for p in folk}
    assert leaks(tmp_path / "d", names) == {"datasets/gp_diagnoses/1.parquet": sorted(names)}


def test_when_story_is_complete_then_no_raw_identifier_is_on_disk(
    store: Store, data_dir: Path
) -> None:
    folk = people(80)
    gp, council = gp_columns(folk[:60]), council_columns(folk[30:])
    submit(store, "gp_diagnoses", "gp", "gp-org", ipc(gp))
    submit(store, "social_care", "council", "council-org", ipc(council))
    broken = gp_columns(folk[60:])
    broken["nhs_number"][3] = "12345"
    with pytest.raises(RowErrors):
        submit(store, "gp_diagnoses", "gp", "gp-org", ipc(broken))
    store.import_optouts([p["nhs_number"] for p in folk[:10]])
    store.create_project(**STATEMENTS, project_id="scan", researcher="uni",
                         datasets=["gp_diagnoses", "social_care"], policy_text=EXTRACT_POLICY,
                         policy_files={}, expires="2025-12-31")
    extract = store.build_extract("scan", organisation="uni")
    assert extract.rows > 0
    store.linkage_report()

    # Every value of every tokenised or dropped column, as typed and as normalised.
    raw: set[str] = set()
    for column in ("nhs_number", "given_name", "family_name", "email"):
        raw.update(gp[column] + broken[column])
    for column in ("nhs", "full_name", "postcode"):
        raw.update(council[column])
    raw.update(p["nhs_number"] for p in folk)
    raw.update(p["postcode"].replace(" ", "") for p in folk)
    files = {p.name for p in data_dir.rglob("*") if p.is_file()}
    assert files >= {"catalog.sqlite3", "1.parquet"}
    assert len(raw) > 300
    assert leaks(data_dir, raw) == {}
