"""Collect once, share as a service: the CLI against a real gateway, end to end.

Providers submit CSV files, an operator registers opt-outs and projects, researchers extract;
then every file in the data directory and every log line is scanned for raw identifiers.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import hashlib
import hmac
import json
import logging
import random
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from pseudogate.cli import main
from pseudogate.core.manifest import (
    Manifest,
    content_sha256,
    load_public_key_pem,
    verify_manifest_signature,
)
from pseudogate.service.app import GatewaySettings, start_gateway
from pseudogate.service.server import GatewayServer
from pseudogate.tools.demo import COUNCIL_POLICY, GP_POLICY
from pseudogate.tools.synthetic import make_people, messy_nhs_number, messy_postcode
from tests.statements import STATEMENT_ARGS

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_KEYS = json.loads((ROOT / "keys_example" / "keyring.json").read_text())

EXTRACT_POLICY = """\
version: 1
name: e2e-extract
columns:
  person:                     {action: keep}
  gp_diagnoses.date_of_birth: {action: generalise, hierarchy: {type: date, levels: [year, 10y]}}
  gp_diagnoses.sex:           {action: generalise, hierarchy: {type: suppress}}
  gp_diagnoses.postcode:      {action: generalise, hierarchy: {type: postcode}}
  gp_diagnoses.diagnosis:     {action: keep, sensitive: true}
  council_care.email:         {action: drop}
  council_care.care_package:  {action: keep}
privacy: {k: 3, l: 2, suppression_limit: 0.1, metric: loss}
"""


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def _key(purpose: str) -> tuple[str, bytes]:
    entry = next(k for k in EXAMPLE_KEYS["keys"] if k["purpose"] == purpose)
    return entry["id"], base64.b64decode(entry["material"])


def _token(purpose: str, info: str, value: str) -> str:
    """The token construction, written out independently of pseudogate.core.tokens."""
    key_id, material = _key(purpose)
    kd = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info.encode()).derive(material)
    mac = hmac.new(kd, value.encode(), hashlib.sha256).digest()[:20]
    return key_id + "_" + base64.b32encode(mac).decode().rstrip("=").lower()


class World:
    def __init__(self, base: Path, gateway: GatewayServer) -> None:
        self.base = base
        self.gateway = gateway
        self.server = ["--server", gateway.address, "--insecure"]
        self.raw_values: set[str] = set()

    def run(self, *argv: str) -> int:
        return main(list(argv))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("e2e")
    (base / "policies").mkdir()
    (base / "policies" / "gp-ingest.yaml").write_text(GP_POLICY, encoding="utf-8")
    (base / "policies" / "council-ingest.yaml").write_text(COUNCIL_POLICY, encoding="utf-8")
    gateway = start_gateway(
        GatewaySettings(port=0, insecure=True, data_dir=base / "data", policies=base / "policies")
    )
    try:
        yield World(base, gateway)
    finally:
        gateway.stop(grace=None)


@pytest.fixture(scope="module")
def populated(world: World) -> dict[str, object]:
    rng = random.Random(11)
    people = make_people(600, seed=11)
    gp, council = people[:400], people[250:]
    gp_rows = [
        [messy_nhs_number(p.nhs_number, rng), p.given_name, p.family_name, p.date_of_birth,
         p.sex, messy_postcode(p.postcode, rng), rng.choice(["asthma", "copd", "none"])]
        for p in gp
    ]
    council_rows = [
        [messy_nhs_number(p.nhs_number, rng), f"{p.given_name} {p.family_name}", p.email,
         rng.choice(["meals", "home care"])]
        for p in council
    ]
    _write_csv(world.base / "gp.csv",
               ["nhs_number", "given_name", "family_name", "date_of_birth", "sex", "postcode", "diagnosis"],
               gp_rows)
    _write_csv(world.base / "council.csv", ["nhs_number", "full_name", "email", "care_package"],
               council_rows)
    for r in gp_rows:
        world.raw_values.update([r[0], r[0].replace(" ", "").replace("-", "").strip(), r[1], r[2]])
    for r in council_rows:
        world.raw_values.update([r[1], r[2]])
    assert world.run("submit", *world.server, "--dataset", "gp_diagnoses", "--policy", "gp-ingest",
                     "--organisation", "gp-denbigh", "--input", str(world.base / "gp.csv")) == 0
    assert world.run("submit", *world.server, "--dataset", "council_care", "--policy",
                     "council-ingest", "--organisation", "denbighshire",
                     "--input", str(world.base / "council.csv")) == 0
    opted = people[240:270]  # 10 GP-only, 20 in both
    _write_csv(world.base / "optouts.csv", ["nhs_number"], [[p.nhs_number] for p in opted])
    assert world.run("optout", "import", *world.server, "--input", str(world.base / "optouts.csv")) == 0
    (world.base / "extract.yaml").write_text(EXTRACT_POLICY, encoding="utf-8")
    for project in ("study-a", "study-b"):
        assert world.run("project", "create", *STATEMENT_ARGS, *world.server, "--id", project, "--researcher",
                         "uni-bangor", "--datasets", "gp_diagnoses,council_care", "--policy",
                         str(world.base / "extract.yaml"), "--expires", "2099-01-01") == 0
    return {"people": people, "gp": gp, "council": council, "opted": opted}


def _extract(world: World, project: str, suffix: str) -> tuple[int, Path, Path]:
    out = world.base / f"{project}{suffix}"
    manifest = world.base / f"{project}.manifest.json"
    code = world.run("extract", *world.server, "--project", project, "--output", str(out),
                     "--manifest", str(manifest))
    return code, out, manifest


def _read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def test_when_providers_submit_then_people_link_across_datasets(
    world: World, populated: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    assert world.run("linkage-report", *world.server) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["datasets"]["gp_diagnoses"] == {"version": 1, "records": 400, "people": 400}
    assert report["datasets"]["council_care"] == {"version": 1, "records": 350, "people": 350}
    assert report["overlap"] == {"council_care|gp_diagnoses": 150}


def test_when_a_researcher_extracts_then_the_manifest_verifies_and_tokens_recompute(
    world: World, populated: dict
) -> None:
    code, out, manifest_path = _extract(world, "study-a", ".csv")
    assert code == 0
    header, rows = _read_csv(out)
    manifest = json.loads(manifest_path.read_text())
    assert header[0] == "person" and "council_care.email" not in header
    assert manifest["rows"] == len(rows) and manifest["project"] == "study-a"
    assert content_sha256(header, rows) == manifest["content_sha256"]
    pem = (world.base / "pk.pem")
    assert world.run("keys", "public", "--server", world.gateway.address, "--insecure",
                     "--output", str(pem)) == 0
    received = Manifest.from_json(manifest_path.read_bytes())
    verify_manifest_signature(received, load_public_key_pem(pem.read_bytes()))
    # Project tokens recomputed from the published construction and the example keyring.
    expected = {
        _token("project", "pseudogate/v1/project/study-a",
               _token("linkage", "pseudogate/v1/domain/person", p.nhs_number))
        for p in populated["gp"] if p not in populated["opted"]
    }
    persons = {r[0] for r in rows}
    assert persons <= expected
    # One row per GP patient: 400, less 30 who opted out, less suppressed rows.
    assert len(persons) == len(rows) == 400 - 30 - manifest["suppressed"]
    assert manifest["k_achieved"] >= 3 and manifest["l_achieved"] >= 2
    assert manifest["key_ids"] == {"linkage": "example-link", "project": "example-proj",
                                   "signing": "example-sign"}


def test_when_two_projects_extract_then_their_tokens_cannot_be_joined(
    world: World, populated: dict
) -> None:
    _, out_a, _ = _extract(world, "study-a", ".csv")
    code, out_b, _ = _extract(world, "study-b", ".parquet")
    assert code == 0
    persons_a = {r[0] for r in _read_csv(out_a)[1]}
    table_b = pq.read_table(out_b)
    persons_b = set(table_b.column("person").to_pylist())
    assert persons_a and persons_b and not (persons_a & persons_b)
    assert all(v is not None for col in table_b.columns for v in col.to_pylist())


def test_when_people_opted_out_then_they_are_not_in_the_extract(world: World, populated: dict) -> None:
    _, out, manifest_path = _extract(world, "study-a", ".csv")
    manifest = json.loads(manifest_path.read_text())
    opted_tokens = {
        _token("project", "pseudogate/v1/project/study-a",
               _token("linkage", "pseudogate/v1/domain/person", p.nhs_number))
        for p in populated["opted"]
    }
    persons = {r[0] for r in _read_csv(out)[1]}
    assert not persons & opted_tokens
    assert manifest["optouts_removed"] == 30 and manifest["optout_snapshot"] == 1


def test_when_an_upload_is_invalid_then_nothing_is_stored(
    world: World, populated: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    data = world.base / "data"
    before = sorted(str(p.relative_to(data)) for p in data.rglob("*") if "audit" not in p.name)
    _write_csv(world.base / "bad.csv",
               ["nhs_number", "given_name", "family_name", "date_of_birth", "sex", "postcode", "diagnosis"],
               [["9434765919", "A", "B", "1970-01-01", "F", "LL15 1AA", "x"],
                ["9434765910", "Secretname", "B", "1970-01-01", "F", "LL15 1AA", "x"]])
    code = world.run("submit", *world.server, "--dataset", "gp_diagnoses", "--policy", "gp-ingest",
                     "--organisation", "gp-denbigh", "--input", str(world.base / "bad.csv"))
    err = capsys.readouterr().err
    assert code != 0 and "row 2" in err and "invalid_check_digit" in err
    assert "9434765910" not in err and "Secretname" not in err
    after = sorted(str(p.relative_to(data)) for p in data.rglob("*") if "audit" not in p.name)
    assert after == before
    assert world.run("linkage-report", *world.server) == 0
    assert json.loads(capsys.readouterr().out)["datasets"]["gp_diagnoses"]["version"] == 1


def test_when_a_submitted_file_has_no_header_row_then_columns_are_named_by_position(
    world: World, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    first = ["9997319168", "ann@example.org", "LL15 1AA"]
    (world.base / "headerless.csv").write_text(
        ",".join([*first, "1970-01-01", "F", "Ann", "asthma"]) + "\n"
        "9434765919,bob@example.org,LS1 4AB,1980-02-03,M,Bob,none\n", encoding="utf-8")
    code = world.run("submit", *world.server, "--dataset", "gp_diagnoses", "--policy", "gp-ingest",
                     "--organisation", "gp-denbigh", "--input", str(world.base / "headerless.csv"))
    out, err = capsys.readouterr()
    assert code != 0 and "input column 1 is not named in policy 'gp-ingest'" in err
    shown = out + err + "\n".join(r.getMessage() for r in caplog.records)
    assert [v for v in first if v in shown] == []


def test_when_a_project_passes_its_expiry_date_then_extracts_are_refused(
    world: World, populated: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    now = [dt.datetime.now(dt.UTC)]
    today = now[0].date()
    gateway = start_gateway(
        GatewaySettings(port=0, insecure=True, data_dir=tmp_path / "data",
                        policies=world.base / "policies", clock=lambda: now[0])
    )
    server = ["--server", gateway.address, "--insecure"]
    try:
        for dataset, policy, csv_name in (("gp_diagnoses", "gp-ingest", "gp.csv"),
                                          ("council_care", "council-ingest", "council.csv")):
            assert main(["submit", *server, "--dataset", dataset, "--policy", policy,
                         "--organisation", "org-a", "--input", str(world.base / csv_name)]) == 0
        assert main(["project", "create", *STATEMENT_ARGS, *server, "--id", "short-study", "--researcher",
                     "uni-bangor", "--datasets", "gp_diagnoses,council_care", "--policy",
                     str(world.base / "extract.yaml"), "--expires", today.isoformat()]) == 0
        args = ["extract", *server, "--project", "short-study", "--manifest", str(tmp_path / "m.json")]
        assert main([*args, "--output", str(tmp_path / "on-expiry-day.csv")]) == 0
        now[0] += dt.timedelta(days=1)
        capsys.readouterr()
        assert main([*args, "--output", str(tmp_path / "day-after.csv")]) != 0
        assert "FAILED_PRECONDITION" in capsys.readouterr().err
        assert not (tmp_path / "day-after.csv").exists()
    finally:
        gateway.stop(grace=None)


def test_when_everything_has_run_then_no_raw_identifier_is_stored_or_logged(
    world: World, populated: dict, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    _extract(world, "study-a", ".csv")
    logged = "\n".join(r.getMessage() for r in caplog.records)
    values = {v for v in world.raw_values if len(v) >= 5}
    assert len(values) > 1000
    for path in (world.base / "data").rglob("*"):
        if path.is_file():
            blob = path.read_bytes()
            found = [v for v in values if v.encode("utf-8") in blob]
            assert not found, f"{path.name} holds raw identifiers"
    assert not [v for v in values if v in logged]


def test_when_a_project_policy_uses_a_tree_file_then_the_cli_sends_it_and_fingerprints_agree(
    world: World, populated: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "policy"
    (folder / "hierarchies").mkdir(parents=True)
    (folder / "hierarchies" / "sex.csv").write_text("F;*\nM;*\n", encoding="utf-8")
    policy = folder / "tree.yaml"
    policy.write_text(
        EXTRACT_POLICY.replace(
            "gp_diagnoses.sex:           {action: generalise, hierarchy: {type: suppress}}",
            "gp_diagnoses.sex:           {action: generalise, hierarchy: "
            "{type: tree, file: hierarchies/sex.csv}}",
        ),
        encoding="utf-8",
    )
    assert main(["policy", "check", str(policy)]) == 0
    local = capsys.readouterr().out
    assert world.run("project", "create", *STATEMENT_ARGS, *world.server, "--id", "tree-study", "--researcher",
                     "uni-bangor", "--datasets", "gp_diagnoses,council_care", "--policy",
                     str(policy), "--expires", "2099-01-01") == 0
    created = capsys.readouterr().out
    fingerprint = created.split("policy fingerprint ")[1].split(",")[0]
    assert fingerprint in local
    code, _, manifest_path = _extract(world, "tree-study", ".csv")
    assert code == 0
    assert json.loads(manifest_path.read_text())["policy_fingerprint"] == fingerprint
