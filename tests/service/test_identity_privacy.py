"""Identity fields through a real gateway (issue 10): names, dates of birth, postcodes and
addresses go in, and no byte the gateway writes, nor any log line, holds one of them.

Providers submit CSV files with ``identify`` columns (one submission is refused for an invalid
NHS number), an operator creates an exact project over both datasets, a researcher extracts,
the linkage report runs; then every file under the data directory (catalog, its WAL, audit
database, Parquet, anything else), the extracts, the CLI's output and the captured log records
are scanned for every raw value and for its normalised and case-folded forms.
"""

from __future__ import annotations

import csv
import json
import logging
import random
import sqlite3
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pseudogate.cli import main
from pseudogate.core.identity import (
    normalise_address,
    normalise_date,
    normalise_name,
    normalise_postcode,
)
from pseudogate.core.names import ENCODING_COLUMN
from pseudogate.service.app import GatewaySettings, start_gateway
from pseudogate.tools.synthetic import nhs_number
from tests.statements import STATEMENT_ARGS

CARE_POLICY = """\
version: 1
name: care-ingest
columns:
  nhs_number: {action: tokenise, kind: nhs_number, domain: person}
  forename:   {action: identify, field: given_name}
  surname:    {action: identify, field: family_name}
  dob:        {action: identify, field: date_of_birth}
  sex:        {action: identify, field: sex}
  postcode:   {action: identify, field: postcode}
  address:    {action: identify, field: address}
  service:    {action: keep}
"""

EXTRACT_POLICY = """\
version: 1
name: identity-extract
columns:
  person:          {action: keep}
  care.service:    {action: keep}
  housing.service: {action: keep}
privacy: {k: 2, suppression_limit: 1}
"""

HEADER = ["nhs_number", "forename", "surname", "dob", "sex", "postcode", "address", "service"]

# Invented, distinctive words: none can occur in the gateway's files by chance.
GIVEN = ["Quintavius", "Ysolde", "Bronwen-Aeronwy", "Zéphyrine", "Maelgwyn", "Oluwaseyi",
         "Tamsinella", "Guinevrah", "Þorvaldur", "Ximenez"]
FAMILY = ["Featherstonehaugh", "Ap-Llewelyn", "O'Quigleyson", "Wrzesniewska", "Trevithickson",
          "Ñúñez-Olmo", "Pennyquick", "Vortigernson", "Glyndwrian", "Huxtabling"]
STREETS = ["Cwmystwyth Lane", "Pantglasiog Road", "Quarrymoorish Terrace", "Zenobiawood Close",
           "Llanrhychwyn Street", "Brynhyfrydol Avenue"]
TOWNS = ["Ruthinvale", "Dyserthwick", "Llanferresby", "Cilcainmoor"]


def _dob(rng: random.Random) -> str:
    y, m, d = rng.randrange(1925, 2005), rng.randrange(1, 13), rng.randrange(13, 29)
    return rng.choice([f"{y}-{m:02d}-{d:02d}", f"{d:02d}/{m:02d}/{y}", f"{y}{m:02d}{d:02d}"])


def _postcode(rng: random.Random) -> str:
    outward = rng.choice(["LL15", "LL16", "CH7", "SY23", "LD1"])
    inward = f"{rng.randrange(10)}{rng.choice('ABDEFGHJLNPQRSTUWXYZ')}{rng.choice('ABDEFGHJLNPQRSTUWXYZ')}"
    return rng.choice([f"{outward} {inward}", f"{outward}{inward}".lower(), f" {outward}  {inward} "])


def _people(n: int, rng: random.Random) -> list[list[str]]:
    rows: list[list[str]] = []
    for i in range(n):
        given, family = rng.choice(GIVEN), rng.choice(FAMILY)
        given = rng.choice([given, given.upper(), given.lower(), f" {given} "])
        address = f"{rng.randrange(1, 300)} {rng.choice(STREETS)}, {rng.choice(TOWNS)}"
        number = nhs_number(rng) if i % 3 else ""  # a third have no NHS number
        rows.append([number, given, family, _dob(rng), rng.choice(["F", "M", "female", ""]),
                     _postcode(rng), rng.choice([address, address.upper()]),
                     rng.choice(["meals", "home care"])])
    return rows


def _write_csv(path: Path, rows: list[list[str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(HEADER)
        writer.writerows(rows)


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _forms(row: list[str]) -> set[str]:
    """A row's identity values as typed, and every normalised or case-folded form of them."""
    _, given, family, dob, _, postcode, address, _ = row
    forms: set[str] = set()
    for value in (given, family, dob, postcode, address):
        for form in (value, value.strip(), value.lower(), value.upper(), value.casefold(),
                     _fold(value)):
            forms.add(form.strip())
    for name in (given, family):
        parts = normalise_name(name) or ()
        forms.update(parts)
        forms.update({"".join(parts), " ".join(parts), "-".join(parts)})
    parts_of_date = normalise_date(dob)
    assert parts_of_date is not None and parts_of_date.parsed
    iso = parts_of_date.text
    forms.update({iso, iso.replace("-", ""), f"{iso[8:]}/{iso[5:7]}/{iso[:4]}"})
    code = normalise_postcode(postcode)
    assert code is not None and " " in code
    forms.update({code, code.replace(" ", ""), code.lower(), code.replace(" ", "").lower()})
    normalised_address = normalise_address(address)
    assert normalised_address is not None
    forms.add(normalised_address)
    forms.update(w for w in normalised_address.split() if len(w) >= 6)  # invented street words
    return {f for f in forms if len(f) >= 6}


def _readable(path: Path) -> list[bytes]:
    """A file's bytes and, where a format could hide a value (compression, pages), its content."""
    forms = [path.read_bytes()]
    if path.suffix == ".parquet":
        table = pq.read_table(path)
        forms.append("\n".join(repr(v) for c in table.columns for v in c.to_pylist()).encode())
    elif path.suffix in {".sqlite3", ".db", ".sqlite"}:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            forms.append("\n".join(db.iterdump()).encode())
        db.close()
    return forms


class World:
    def __init__(self, base: Path, address: str) -> None:
        self.base = base
        self.server = ["--server", address, "--insecure"]
        self.raw: set[str] = set()
        self.shown: list[str] = []  # everything the CLI printed


@pytest.fixture(scope="module")
def gateway_base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    base = tmp_path_factory.mktemp("identity")
    (base / "policies").mkdir()
    (base / "policies" / "care-ingest.yaml").write_text(CARE_POLICY, encoding="utf-8")
    gateway = start_gateway(GatewaySettings(port=0, insecure=True, data_dir=base / "data",
                                            policies=base / "policies"))
    try:
        yield base, gateway.address
    finally:
        gateway.stop(grace=None)


def _run(world: World, capsys: pytest.CaptureFixture[str], *argv: str) -> int:
    code = main(list(argv))
    out, err = capsys.readouterr()
    world.shown.extend([out, err])
    return code


def test_when_identity_fields_are_submitted_then_no_raw_value_is_stored_or_logged(
    gateway_base: tuple[Path, str], capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    base, address = gateway_base
    world = World(base, address)
    rng = random.Random(20261201)
    care, housing = _people(150, rng), _people(90, rng)
    housing[:40] = [list(r) for r in care[:40]]  # people known to both providers
    for row in care + housing:
        world.raw |= _forms(row)
    _write_csv(base / "care.csv", care)
    _write_csv(base / "housing.csv", housing)
    for dataset, name in (("care", "care.csv"), ("housing", "housing.csv")):
        assert _run(world, capsys, "submit", *world.server, "--dataset", dataset, "--policy",
                    "care-ingest", "--organisation", "denbighshire",
                    "--input", str(base / name)) == 0

    # A refused submission: its identity values must not reach the error or the disk either.
    refused = [list(r) for r in _people(5, random.Random(3))]
    refused[2][0] = "9434765910"  # invalid check digit
    for row in refused:
        world.raw |= _forms(row)
    _write_csv(base / "refused.csv", refused)
    assert _run(world, capsys, "submit", *world.server, "--dataset", "care", "--policy",
                "care-ingest", "--organisation", "denbighshire",
                "--input", str(base / "refused.csv")) != 0
    assert "row 3" in world.shown[-1] and "invalid_check_digit" in world.shown[-1]

    (base / "extract.yaml").write_text(EXTRACT_POLICY, encoding="utf-8")
    assert _run(world, capsys, "project", "create", *STATEMENT_ARGS, *world.server, "--id", "identity-study",
                "--researcher", "uni-bangor", "--datasets", "care,housing", "--policy",
                str(base / "extract.yaml"), "--expires", "2099-01-01") == 0
    extract = base / "extract.csv"
    assert _run(world, capsys, "extract", *world.server, "--project", "identity-study",
                "--output", str(extract), "--manifest", str(base / "manifest.json")) == 0
    with extract.open(encoding="utf-8", newline="") as f:
        header = next(csv.reader(f))
    assert header == ["person", "care.service", "housing.service"]
    assert _run(world, capsys, "linkage-report", *world.server) == 0
    report = json.loads(world.shown[-2])
    assert report["datasets"]["care"]["records"] == 150
    assert report["datasets"]["care"]["people"] == 100  # the 50 without a number are no one here

    data = base / "data"
    stored = pq.read_table(data / "datasets" / "care" / "1.parquet")
    assert stored.column_names == ["nhs_number", "service", ENCODING_COLUMN]
    files = sorted(p for p in data.rglob("*") if p.is_file())
    names = {p.name for p in files}
    assert "1.parquet" in names and any("audit" in n for n in names), names
    assert len(world.raw) > 1000
    values = sorted(world.raw)
    leaks: dict[str, list[str]] = {}
    for path in [*files, extract, base / "manifest.json"]:
        found = [v for v in values if any(v.encode("utf-8") in form for form in _readable(path))]
        if found:
            leaks[str(path.relative_to(base))] = found[:5]
    assert leaks == {}
    # The scan itself works: it finds the values in the providers' own files.
    typed = (base / "care.csv").read_bytes()
    assert sum(v.encode("utf-8") in typed for v in values) > 300
    logged = "\n".join([r.getMessage() for r in caplog.records] + world.shown)
    assert [v for v in values if v in logged] == []
