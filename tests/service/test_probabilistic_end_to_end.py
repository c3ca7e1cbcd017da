"""A probabilistic project end to end, through the CLI and a real gateway on loopback.

Two providers hold NHS numbers and identity fields (a GP practice and a hospital, whose clerks
type names and dates differently and sometimes leave the NHS number out); a fire service's home
safety visits carry identity fields only. A probabilistic project links the fire service's
visits to the NHS-numbered records, opt-outs remove whole clusters, the manifest verifies with
``verify-extract``, and no byte the gateway wrote holds a raw name, date of birth or address.
"""

from __future__ import annotations

import csv
import json
import logging
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from pseudogate.cli import main
from pseudogate.service.app import GatewaySettings, start_gateway
from pseudogate.service.server import GatewayServer
from pseudogate.tools.synthetic import Person, make_people, messy_nhs_number
from tests.statements import STATEMENT_ARGS

from .test_end_to_end import _token

GP_POLICY = """\
version: 1
name: gp-identify
columns:
  nhs_number:    {action: tokenise, kind: nhs_number, domain: person}
  given_name:    {action: identify, field: given_name}
  family_name:   {action: identify, field: family_name}
  date_of_birth: {action: identify, field: date_of_birth}
  sex:           {action: identify, field: sex}
  postcode:      {action: identify, field: postcode}
  address:       {action: identify, field: address}
  diagnosis:     {action: keep}
"""

HOSPITAL_POLICY = """\
version: 1
name: hospital-identify
columns:
  nhs:       {action: tokenise, kind: nhs_number, domain: person}
  forename:  {action: identify, field: given_name}
  surname:   {action: identify, field: family_name}
  dob:       {action: identify, field: date_of_birth}
  gender:    {action: identify, field: sex}
  post_code: {action: identify, field: postcode}
  ward:      {action: keep}
"""

FIRE_POLICY = """\
version: 1
name: fire-visits
columns:
  first_name:   {action: identify, field: given_name}
  last_name:    {action: identify, field: family_name}
  birth_date:   {action: identify, field: date_of_birth}
  address_line: {action: identify, field: address}
  postcode:     {action: identify, field: postcode}
  outcome:      {action: keep}
"""

EXTRACT_POLICY = """\
version: 1
name: fire-risk-study
columns:
  person:           {action: keep}
  fire.outcome:     {action: keep}
  gp.diagnosis:     {action: keep}
  hospital.ward:    {action: keep}
privacy: {k: 2, suppression_limit: 0.5}
"""

_STREETS = ["Heol y Castell", "Ffordd Las", "Bryn Awelon", "Maes Meurig", "Stryd Fawr"]


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def _read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def _uk_date(iso: str) -> str:
    return f"{iso[8:10]}/{iso[5:7]}/{iso[0:4]}"


def _typo(name: str, rng: random.Random) -> str:
    cut = rng.randrange(1, len(name))
    return name[:cut] + name[cut + 1:]


class World:
    def __init__(self, base: Path, gateway: GatewayServer) -> None:
        self.base = base
        self.gateway = gateway
        self.server = ["--server", gateway.address, "--insecure"]
        self.raw_values: set[str] = set()
        self.people: list[Person] = []
        self.addresses: dict[str, str] = {}

    def run(self, *argv: str) -> int:
        return main(list(argv))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("e2e-probabilistic")
    (base / "policies").mkdir()
    for name, text in (("gp-identify", GP_POLICY), ("hospital-identify", HOSPITAL_POLICY),
                       ("fire-visits", FIRE_POLICY)):
        (base / "policies" / f"{name}.yaml").write_text(text, encoding="utf-8")
    gateway = start_gateway(
        GatewaySettings(port=0, insecure=True, data_dir=base / "data", policies=base / "policies")
    )
    try:
        yield World(base, gateway)
    finally:
        gateway.stop(grace=None)


# GP: people 0-299. Hospital: 150-349. Fire service: 100-249 and 350-399 (no NHS numbers).
KNOWN = 200  # in all three; their fire record is typed differently but without typos
OPTED = (120, 121, 122, 210)  # opted out: each in the fire service's data and the GP's


@pytest.fixture(scope="module")
def populated(world: World) -> World:
    rng = random.Random(23)
    people = make_people(400, seed=23)
    world.people = people
    for i, p in enumerate(people):
        world.addresses[p.nhs_number] = f"{10 + i} {rng.choice(_STREETS)}"
    gp_rows = [
        [p.nhs_number, p.given_name, p.family_name, p.date_of_birth, p.sex, p.postcode,
         world.addresses[p.nhs_number], rng.choice(["asthma", "copd", "none"])]
        for p in people[:300]
    ]
    hospital_rows = []
    for i, p in enumerate(people[150:350], 150):
        nhs = "" if i % 10 == 0 else messy_nhs_number(p.nhs_number, rng)  # clerks leave it out
        hospital_rows.append([nhs, p.given_name.upper(), p.family_name, _uk_date(p.date_of_birth),
                              p.sex.lower(), p.postcode.replace(" ", ""),
                              rng.choice(["A1", "B2", "C3"])])
    fire_rows = []
    for i, p in enumerate([*people[100:250], *people[350:400]]):
        given, family = p.given_name, p.family_name
        if i % 7 == 3 and p is not people[KNOWN]:
            family = _typo(family, rng)
        fire_rows.append([given.lower(), family.upper(), _uk_date(p.date_of_birth),
                          world.addresses[p.nhs_number].upper(), p.postcode.lower(),
                          rng.choice(["alarm fitted", "advice given"])])
    _write_csv(world.base / "gp.csv", ["nhs_number", "given_name", "family_name",
               "date_of_birth", "sex", "postcode", "address", "diagnosis"], gp_rows)
    _write_csv(world.base / "hospital.csv", ["nhs", "forename", "surname", "dob", "gender",
               "post_code", "ward"], hospital_rows)
    _write_csv(world.base / "fire.csv", ["first_name", "last_name", "birth_date",
               "address_line", "postcode", "outcome"], fire_rows)
    for rows, columns in ((gp_rows, range(1, 7)), (hospital_rows, range(1, 6)),
                          (fire_rows, range(5))):
        for r in rows:
            world.raw_values.update(r[c] for c in columns)
    for p in people:
        world.raw_values.update([p.given_name, p.family_name, p.date_of_birth,
                                 _uk_date(p.date_of_birth), world.addresses[p.nhs_number]])
    for dataset, policy, org in (("gp", "gp-identify", "gp-denbigh"),
                                 ("hospital", "hospital-identify", "ysbyty-glan-clwyd"),
                                 ("fire", "fire-visits", "nwfrs")):
        assert world.run("submit", *world.server, "--dataset", dataset, "--policy", policy,
                         "--organisation", org, "--input", str(world.base / f"{dataset}.csv")) == 0
    _write_csv(world.base / "optouts.csv", ["nhs_number"],
               [[people[i].nhs_number] for i in OPTED])
    (world.base / "extract.yaml").write_text(EXTRACT_POLICY, encoding="utf-8")
    for project, linkage in (("fire-exact", []), ("fire-prob", ["--linkage", "probabilistic"])):
        code = world.run("project", "create", *STATEMENT_ARGS, *world.server, "--id", project, "--researcher",
                         "uni-bangor", "--datasets", "fire,gp,hospital", "--policy",
                         str(world.base / "extract.yaml"), "--expires", "2099-01-01", *linkage)
        assert code == (0 if linkage else 1)  # exact: fire has no NHS numbers to join on
    return world


def _extract(world: World, name: str) -> tuple[Path, Path]:
    out, manifest = world.base / f"{name}.csv", world.base / f"{name}.manifest.json"
    assert world.run("extract", *world.server, "--project", "fire-prob", "--output", str(out),
                     "--manifest", str(manifest)) == 0
    return out, manifest


def _person(p: Person) -> str:
    return _token("project", "pseudogate/v1/project/fire-prob",
                  _token("linkage", "pseudogate/v1/domain/person", p.nhs_number))


def test_when_a_fire_service_has_no_nhs_numbers_then_its_visits_link_to_the_nhs_records(
    populated: World,
) -> None:
    out, manifest_path = _extract(populated, "before-optouts")
    header, rows = _read_csv(out)
    assert header == ["person", "fire.outcome", "gp.diagnosis", "hospital.ward"]
    people = populated.people
    fire_people = [*people[100:250], *people[350:400]]
    assert len(rows) == len(fire_people)  # each visit once: nobody has two GP or ward rows
    known = rows[fire_people.index(people[KNOWN])]
    assert known[0] == _person(people[KNOWN])  # the NHS-numbered person, found by identity
    assert known[2] != "" and known[3] != ""  # ... with their GP and hospital rows
    pairs = zip(rows[:150], fire_people[:150], strict=True)
    linked = sum(row[0] == _person(p) for row, p in pairs)
    assert linked >= 145, linked  # typos in one record in seven (all 150 found on 2026-12-01)
    nhs_people = {_person(p) for p in people[:350]}
    fire_only = [row[0] for row in rows[150:]]
    assert not set(fire_only) & nhs_people and len(set(fire_only)) == 50
    assert {row[2] for row in rows[150:]} == {""}
    manifest = json.loads(manifest_path.read_text())
    assert manifest["linkage"] == {"method": "probabilistic", "threshold": 0.5,
                                   "encoding": "pg-fbf-v1"}
    assert manifest["optout_snapshot"] is None


def test_when_people_opt_out_then_their_clusters_are_removed_whole_and_it_verifies(
    populated: World, capsys: pytest.CaptureFixture[str]
) -> None:
    world = populated
    assert world.run("optout", "import", *world.server,
                     "--input", str(world.base / "optouts.csv")) == 0
    out, manifest_path = _extract(world, "after-optouts")
    _, rows = _read_csv(out)
    people = world.people
    opted = {_person(people[i]) for i in OPTED}
    assert not opted & {row[0] for row in rows}
    # their fire visits carried no NHS number, and went with the rest of their cluster
    assert len(rows) == 200 - len(OPTED)
    manifest = json.loads(manifest_path.read_text())
    assert manifest["optouts_removed"] == "<10" and manifest["optout_snapshot"] == 1
    pem = world.base / "gateway.pem"
    assert world.run("keys", "public", *world.server, "--output", str(pem)) == 0
    capsys.readouterr()
    code = world.run("verify-extract", str(out), "--manifest", str(manifest_path),
                     "--public-key", str(pem), "--policy", str(world.base / "extract.yaml"))
    report = capsys.readouterr().out
    assert code == 0, report
    assert "probabilistic (pg-fbf-v1 encodings, threshold 0.5)" in report


def test_when_everything_has_run_then_no_raw_name_date_or_address_was_written(
    populated: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    _extract(populated, "scan")
    values = {v for v in populated.raw_values if len(v) >= 5}
    assert len(values) > 1000
    encoded = [(v, v.encode("utf-8")) for v in values]
    files = [p for p in (populated.base / "data").rglob("*") if p.is_file()]
    files += [p for p in populated.base.rglob("*.log") if p.is_file()]
    files += [p for p in populated.base.glob("*") if p.suffix == ".csv" and p.stem in (
        "before-optouts", "after-optouts", "scan")]  # and what the researcher received
    files += list(populated.base.glob("*.manifest.json"))
    assert any(p.suffix == ".parquet" for p in files)
    assert any("audit" in p.name for p in files)
    for path in files:
        blob = path.read_bytes()
        found = [v for v, b in encoded if b in blob]
        assert not found, f"{path.name} holds raw identity values"
    assert len([p for p in files if p.suffix == ".csv"]) == 3
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert not [v for v in values if v in logged]
