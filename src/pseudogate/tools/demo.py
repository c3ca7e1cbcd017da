"""The end-to-end demonstration behind ``make demo``: collect once, share as a service.

Everything runs on embedded defaults: the EXAMPLE keyring, a temporary data directory, and a
gateway on a free loopback port (plaintext, development only). Every step goes through the
real gRPC API, as providers, operators and researchers would call it.
"""

from __future__ import annotations

import csv
import json
import random
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import grpc
import pyarrow as pa

from pseudogate.audit import verify_export
from pseudogate.core.arrow_ipc import ipc_stream_bytes, text_table
from pseudogate.core.keyring import EXAMPLE_KEYRING, Keyring
from pseudogate.core.manifest import (
    Manifest,
    content_sha256,
    load_public_key_pem,
    verify_manifest_signature,
)
from pseudogate.core.names import DEFAULT_DOMAIN, PERSON_COLUMN
from pseudogate.core.policy import load_policy
from pseudogate.service.app import GatewaySettings, start_gateway
from pseudogate.tools.synthetic import (
    Person,
    make_people,
    messy_identity,
    messy_nhs_number,
    messy_postcode,
)
from pseudogate.tools.verify_extract import verify_extract
from pseudogate.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    audit_pb2,
    audit_pb2_grpc,
    dataset_pb2,
    dataset_pb2_grpc,
    extract_pb2,
    extract_pb2_grpc,
    tokenisation_pb2,
    tokenisation_pb2_grpc,
)

__all__ = ["COUNCIL_POLICY", "EXTRACT_POLICY", "FIRE_POLICY", "GP_LINKAGE_POLICY", "GP_POLICY", "SAFETY_POLICY", "run_demo"]

GP_POLICY = """\
version: 1
name: gp-ingest
columns:
  nhs_number:    {action: tokenise, kind: nhs_number, domain: person}
  given_name:    {action: drop}
  family_name:   {action: drop}
  date_of_birth: {action: keep}
  sex:           {action: keep}
  postcode:      {action: keep}
  diagnosis:     {action: keep}
"""

#: The GP policy the demo runs with: as :data:`GP_POLICY`, and the names, date of birth and
#: postcode also sent (a second time, under other column names) as identity fields, so that
#: providers without NHS numbers can be linked to GP records by their encodings.
GP_LINKAGE_POLICY = GP_POLICY.replace("""\
  given_name:    {action: drop}
  family_name:   {action: drop}
""", """\
  given_name:    {action: identify, field: given_name}
  family_name:   {action: identify, field: family_name}
  birth_date:    {action: identify, field: date_of_birth}
  home_postcode: {action: identify, field: postcode}
""")

FIRE_POLICY = """\
version: 1
name: fire-ingest
columns:
  visit_ref:     {action: keep}
  forename:      {action: identify, field: given_name}
  surname:       {action: identify, field: family_name}
  dob:           {action: identify, field: date_of_birth}
  gender:        {action: identify, field: sex}
  postcode:      {action: identify, field: postcode}
  address_line:  {action: identify, field: address}
  outcome:       {action: keep}
"""

COUNCIL_POLICY = """\
version: 1
name: council-ingest
columns:
  nhs_number:   {action: tokenise, kind: nhs_number, domain: person}
  full_name:    {action: drop}
  email:        {action: tokenise, kind: email, domain: email}
  care_package: {action: keep}
"""

EXTRACT_POLICY = """\
version: 1
name: frailty-study
columns:
  person:                     {action: keep}
  gp_diagnoses.date_of_birth: {action: generalise, hierarchy: {type: date, levels: [year, 5y, 10y]}}
  gp_diagnoses.sex:           {action: generalise, hierarchy: {type: suppress}}
  gp_diagnoses.postcode:      {action: generalise, hierarchy: {type: postcode}}
  gp_diagnoses.diagnosis:     {action: keep, sensitive: true}
  council_care.email:         {action: drop}
  council_care.care_package:  {action: keep}
privacy:
  k: 5
  l: 2
  suppression_limit: 0.05
  metric: loss
"""

#: A probabilistic project: fire service home safety visits linked to GP records by encodings.
#: The visit reference is kept so that the demo, which knows the truth of its synthetic
#: population, can score the linkage; a real study would drop it.
SAFETY_POLICY = """\
version: 1
name: home-safety-study
columns:
  person:                     {action: keep}
  fire_visits.visit_ref:      {action: keep}
  fire_visits.outcome:        {action: keep}
  gp_diagnoses.date_of_birth: {action: drop}
  gp_diagnoses.sex:           {action: drop}
  gp_diagnoses.postcode:      {action: drop}
  gp_diagnoses.diagnosis:     {action: keep}
privacy:
  k: 2
"""

_DIAGNOSES = ["asthma", "diabetes", "hypertension", "copd", "depression", "none"]
_PACKAGES = ["home care", "day centre", "meals", "reablement"]
_OUTCOMES = ["smoke alarm fitted", "advice given", "referral made", "no access"]


def _say(text: str = "") -> None:
    print(text, flush=True)


def _submission(
    dataset: str, policy: str, organisation: str, columns: dict[str, list[str]]
) -> Iterator[dataset_pb2.SubmitDatasetRequest]:
    yield dataset_pb2.SubmitDatasetRequest(
        header=dataset_pb2.SubmissionHeader(
            dataset=dataset, policy=policy, organisation=organisation
        )
    )
    yield dataset_pb2.SubmitDatasetRequest(arrow_ipc=ipc_stream_bytes(text_table(columns)))


def _gp_columns(people: Sequence[Person], rng: random.Random) -> dict[str, list[str]]:
    return {
        "nhs_number": [messy_nhs_number(p.nhs_number, rng) for p in people],
        "given_name": [p.given_name for p in people],
        "family_name": [p.family_name for p in people],
        "birth_date": [p.date_of_birth for p in people],
        "home_postcode": [p.postcode for p in people],
        "date_of_birth": [p.date_of_birth for p in people],
        "sex": [p.sex for p in people],
        "postcode": [messy_postcode(p.postcode, rng) for p in people],
        "diagnosis": [rng.choice(_DIAGNOSES) for _ in people],
    }


def _council_columns(people: Sequence[Person], rng: random.Random) -> dict[str, list[str]]:
    return {
        "nhs_number": [messy_nhs_number(p.nhs_number, rng) for p in people],
        "full_name": [f"{p.given_name} {p.family_name}".upper() for p in people],
        "email": [p.email for p in people],
        "care_package": [rng.choice(_PACKAGES) for _ in people],
    }


def _fire_visits(
    people: Sequence[Person], in_gp: int, rng: random.Random
) -> tuple[dict[str, list[str]], list[int]]:
    """Home safety visits: mostly people the GP holds, some it does not, a few visited twice.

    The fire service holds no NHS numbers; it records names, dates of birth and addresses its
    own way (:func:`messy_identity`). Returns the columns and each visit's person (by index
    into ``people``), which is the truth the demo scores the linkage against.
    """
    visited = rng.sample(range(in_gp), len(people) // 8)
    visited += rng.sample(range(in_gp, len(people)), len(people) // 20)
    visited += rng.sample(visited, len(visited) // 10)  # repeat visits
    rng.shuffle(visited)
    columns: dict[str, list[str]] = {c: [] for c in (
        "visit_ref", "forename", "surname", "dob", "gender", "postcode", "address_line", "outcome")}
    for i, who in enumerate(visited):
        seen = messy_identity(people[who], rng)
        columns["visit_ref"].append(f"FV{i:06d}")
        columns["forename"].append(seen["given_name"])
        columns["surname"].append(seen["family_name"])
        columns["dob"].append(seen["date_of_birth"])
        columns["gender"].append(seen["sex"])
        columns["postcode"].append(seen["postcode"])
        columns["address_line"].append(seen["address"])
        columns["outcome"].append(rng.choice(_OUTCOMES))
    return columns, visited


def _linkage_scores(
    table: pa.Table, visits: Sequence[int], gp_people: Sequence[Person]
) -> tuple[int, float, float, int]:
    """How many visits the extract links to a GP record, and the pairwise precision and recall
    of the links (visit-to-GP-record and visit-to-visit) against the synthetic truth.

    A GP record's ``person`` is the project token of its NHS linkage token, so the demo, which
    holds the EXAMPLE keys and the truth, can tell whose record a visit was joined to.
    """
    keyring = Keyring.load(EXAMPLE_KEYRING)
    linkage = keyring.linkage_tokeniser(DEFAULT_DOMAIN)
    project = keyring.project_tokeniser("home-safety-study")
    numbers = [p.nhs_number for p in gp_people]
    whose = dict(zip(project.tokens(linkage.tokens(numbers)), range(len(numbers)), strict=True))
    visit = table.column("fire_visits.visit_ref").to_pylist()
    joined = table.column("gp_diagnoses.diagnosis").to_pylist()
    person = table.column(PERSON_COLUMN).to_pylist()
    shown = {int(v[2:]) for v in visit if v}
    found = {(int(v[2:]), whose.get(t, -1)) for v, t, d in zip(visit, person, joined, strict=True)
             if v and d}
    true = {(i, who) for i, who in enumerate(visits) if who < len(gp_people) and i in shown}
    by_person: dict[str, set[int]] = {}
    for v, t in zip(visit, person, strict=True):
        if v:
            by_person.setdefault(t, set()).add(int(v[2:]))
    same_visits = {(a, b) for group in by_person.values() for a in group for b in group if a < b}
    true_visits = {(a, b) for a in shown for b in shown if a < b and visits[a] == visits[b]}
    hits = len(found & true) + len(same_visits & true_visits)
    predicted = len(found) + len(same_visits)
    actual = len(true) + len(true_visits)
    linked = len({v for v, _ in found})
    precision = hits / predicted if predicted else 1.0
    recall = hits / actual if actual else 1.0
    return linked, precision, recall, len(shown)


def _extract(channel: grpc.Channel, project: str) -> tuple[pa.Table, Manifest]:
    tables: list[pa.Table] = []
    manifest: Manifest | None = None
    stub = extract_pb2_grpc.ExtractServiceStub(channel)
    for message in stub.CreateExtract(extract_pb2.CreateExtractRequest(project=project)):
        if message.WhichOneof("payload") == "arrow_ipc":
            tables.append(pa.ipc.open_stream(message.arrow_ipc).read_all())
        else:
            manifest = Manifest.from_json(message.manifest_json)
    if manifest is None:
        raise RuntimeError(f"the extract of {project} ended without a manifest")
    return pa.concat_tables(tables), manifest


def _write_csv(table: pa.Table, path: Path) -> list[list[str]]:
    rows = [list(r) for r in zip(*(c.to_pylist() for c in table.columns), strict=True)]
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(table.column_names)
        writer.writerows(rows)
    return rows


def run_demo(*, workdir: Path | None = None, population: int = 3_000) -> int:
    """Run the whole story; returns 0 when every check the demo makes holds.

    With ``workdir`` the data directory, policies and the extract stay there to look at
    (the folder is emptied first); without, everything lives in a temporary folder.
    """
    with tempfile.TemporaryDirectory(prefix="pseudogate-demo-") as tmp:
        base = workdir or Path(tmp)
        if workdir is not None and workdir.exists():
            shutil.rmtree(workdir)
        policies = base / "policies"
        policies.mkdir(parents=True, exist_ok=True)
        (policies / "gp-ingest.yaml").write_text(GP_LINKAGE_POLICY, encoding="utf-8")
        (policies / "council-ingest.yaml").write_text(COUNCIL_POLICY, encoding="utf-8")
        (policies / "fire-ingest.yaml").write_text(FIRE_POLICY, encoding="utf-8")
        _say("== pseudogate demo: collect once, share as a service ==")
        _say("(EXAMPLE keys and plaintext on loopback: for demonstration only)")
        gateway = start_gateway(
            GatewaySettings(port=0, insecure=True, data_dir=base / "data", policies=policies)
        )
        try:
            with grpc.insecure_channel(gateway.address) as channel:
                return _story(channel, base, population)
        finally:
            gateway.stop()


def _story(channel: grpc.Channel, base: Path, population: int) -> int:
    rng = random.Random(2026)
    people = make_people(population, seed=2026)
    gp_people = people[: population * 7 // 10]
    council_people = people[population * 4 // 10 :]
    overlap = len(gp_people) + len(council_people) - population
    checks: list[tuple[str, bool]] = []

    # 1. Two providers submit their records; identifiers are tokenised on arrival.
    datasets = dataset_pb2_grpc.DatasetServiceStub(channel)
    gp = datasets.SubmitDataset(
        _submission("gp_diagnoses", "gp-ingest", "gp-denbigh", _gp_columns(gp_people, rng))
    )
    council = datasets.SubmitDataset(
        _submission(
            "council_care", "council-ingest", "denbighshire-council",
            _council_columns(council_people, rng),
        )
    )
    fire_columns, visits = _fire_visits(people, len(gp_people), rng)
    fire = datasets.SubmitDataset(
        _submission("fire_visits", "fire-ingest", "north-wales-fire", fire_columns)
    )
    _say("\n1. Providers submit (NHS numbers tokenised on arrival; names, dates of birth and")
    _say("   addresses kept only as sealed linkage encodings):")
    _say(f"   GP practice      gp_diagnoses v{gp.version}: {gp.rows} records, key {gp.key_id}")
    _say(f"   Council          council_care v{council.version}: {council.rows} records")
    _say(f"   Fire service     fire_visits v{fire.version}: {fire.rows} home safety visits, "
         "no NHS numbers")

    # 2. The operator checks linkage: counts only.
    admin = admin_pb2_grpc.AdminServiceStub(channel)
    report = json.loads(admin.LinkageReport(admin_pb2.LinkageReportRequest()).report_json)
    linked = report["overlap"].get("council_care|gp_diagnoses", 0)
    _say(f"\n2. Linkage report (counts only): {linked} people appear in both datasets")
    checks.append((f"people linked across providers = {overlap}", linked == overlap))
    probable = report.get("probabilistic", {}).get("overlap", {}).get("fire_visits|gp_diagnoses")
    true_people = len({who for who in visits if who < len(gp_people)})
    _say(f"   by encodings: {probable} people of the fire service's visits are GP patients "
         f"(truth: {true_people})")
    checks.append(("probabilistic overlap in the report within 5% of the truth",
                   probable is not None and abs(probable - true_people) <= 0.05 * true_people))

    # 3. Opt-outs: a snapshot of NHS numbers, kept as tokens only.
    opted_out = rng.sample(people, 40)
    snapshot = admin.ImportOptOuts(
        admin_pb2.ImportOptOutsRequest(nhs_numbers=[messy_nhs_number(p.nhs_number, rng) for p in opted_out])
    )
    _say(f"\n3. National data opt-out: snapshot {snapshot.snapshot} with {snapshot.count} people")

    # 4. Two approved projects bound to the same extract policy.
    for project in ("frailty-study", "housing-study"):
        created = admin.CreateProject(
            admin_pb2.CreateProjectRequest(
                project=project, researcher="uni-bangor", datasets=["gp_diagnoses", "council_care"],
                policy_yaml=EXTRACT_POLICY, expires="2099-12-31",
                title=(
                    "Frailty in older people receiving social care"
                    if project == "frailty-study"
                    else "Housing, social care and GP diagnoses"
                ),
                purpose=(
                    "To find out which health conditions make older people who receive council "
                    "care more likely to become frail, so that help can be offered earlier."
                    if project == "frailty-study"
                    else "To understand how people's health, as seen by their GP, relates to "
                    "the social care the council provides, to plan services better."
                ),
                legal_basis="UK GDPR Art. 6(1)(e) and 9(2)(j)",
                public_benefit=(
                    "Earlier support for frail older people and better-planned care services "
                    "in North Wales."
                ),
            )
        )
    _say(f"\n4. Projects registered; extract policy fingerprint {created.policy_fingerprint[:16]}…")

    # 5. The researcher pulls extracts and verifies them offline.
    table, manifest = _extract(channel, "frailty-study")
    other, _ = _extract(channel, "housing-study")
    out = base / "frailty-study.csv"
    rows = _write_csv(table, out)
    out.with_suffix(".manifest.json").write_text(
        json.dumps(manifest.to_json_dict(), indent=2), encoding="utf-8"
    )
    public_pem = audit_pb2_grpc.AuditServiceStub(channel).GetPublicKey(
        audit_pb2.GetPublicKeyRequest()
    ).public_key_pem
    try:
        verify_manifest_signature(manifest, load_public_key_pem(public_pem))
        signature_ok = True
    except Exception:  # noqa: BLE001 - reported as a failed check
        signature_ok = False
    hash_ok = content_sha256(table.column_names, rows) == manifest.content_sha256
    shared = set(table.column(PERSON_COLUMN).to_pylist()) & set(
        other.column(PERSON_COLUMN).to_pylist()
    )
    _say(f"\n5. Researcher's extract: {manifest.rows} rows, columns {', '.join(table.column_names)}")
    _say(f"   k achieved {manifest.k_achieved} (policy k=5), l achieved {manifest.l_achieved},"
         f" suppressed {manifest.suppressed}, loss {manifest.loss:.3f}")
    _say(f"   opt-outs removed: {manifest.optouts_removed} (snapshot {manifest.optout_snapshot})")
    _say(f"   manifest signature verified with the gateway's public key: {signature_ok}")
    _say(f"   content hash recomputed from the CSV: {hash_ok}")
    _say(f"   person tokens shared with another project's extract: {len(shared)} (unlinkable)")
    _say("   first rows:")
    for row in rows[:3]:
        _say("     " + ", ".join(row))
    _say(f"   files: {out} and {out.with_suffix('.manifest.json').name}")
    checks += [
        ("k achieved >= 5", manifest.k_achieved is not None and manifest.k_achieved >= 5),
        ("signature verifies", signature_ok),
        ("content hash matches", hash_ok),
        ("projects unlinkable", not shared),
        ("opt-outs removed", manifest.optouts_removed != 0),
    ]

    # 6. Tokenisation as a service, for providers who only want tokens back.
    stub = tokenisation_pb2_grpc.TokenisationServiceStub(channel)
    reply = stub.Tokenise(
        tokenisation_pb2.TokeniseRequest(domain=DEFAULT_DOMAIN, values=["943 476 5919", "943 476 5910"])
    )
    _say(f"\n6. Tokenise RPC: a valid NHS number -> {reply.tokens[0]}; an invalid one -> "
         f"refused ({reply.errors[0].reason}), the value never echoed")

    # 7. An auditor re-checks the extract and the log offline, trusting nothing but the key.
    public_key = load_public_key_pem(public_pem)
    policy_file = base / "frailty-study.policy.yaml"
    policy_file.write_text(EXTRACT_POLICY, encoding="utf-8")
    verdict = verify_extract(out, manifest, public_key, policy=load_policy(policy_file))
    _say("\n7. Auditor: pseudogate verify-extract (signature, content hash, k and l, identifier scan)")
    for line in verdict.render().splitlines():
        _say(f"   {line}")
    lines = [
        m.record_json
        for m in audit_pb2_grpc.AuditServiceStub(channel).ListEvents(audit_pb2.ListEventsRequest())
    ]
    export = base / "audit.jsonl"
    export.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = verify_export(lines, public_key)
    _say(f"   pseudogate audit verify: {report.events} events chain to a signed checkpoint "
         f"(head {report.head_hash[:16]}…); export in {export.name}")
    checks += [("extract verifies offline", verdict.ok), ("audit log verifies", report.events > 0)]

    # 8. People without NHS numbers: fire service visits linked to GP records by encodings.
    admin.CreateProject(
        admin_pb2.CreateProjectRequest(
            project="home-safety-study", researcher="uni-bangor",
            datasets=["fire_visits", "gp_diagnoses"], policy_yaml=SAFETY_POLICY,
            expires="2099-12-31", linkage="probabilistic",
            title="Home fire safety visits and health",
            purpose=(
                "To learn which health conditions are common among the people the fire service "
                "visits at home, so that visits can reach those most at risk of fire sooner."
            ),
            legal_basis="UK GDPR Art. 6(1)(e) and 9(2)(j)",
            public_benefit="Fewer deaths and injuries from fires in the home in North Wales.",
        )
    )
    safety, safety_manifest = _extract(channel, "home-safety-study")
    linked_visits, precision, recall, kept = _linkage_scores(safety, visits, gp_people)
    opted = {people.index(p) for p in opted_out}
    left_in = sum(1 for v in safety.column("fire_visits.visit_ref").to_pylist()
                  if v and visits[int(v[2:])] in opted)
    _say("\n8. Probabilistic project home-safety-study (fire visits + GP records, no shared number):")
    _say(f"   linkage {json.dumps(safety_manifest.to_json_dict().get('linkage'))}")
    _say(f"   {linked_visits} of {kept} visits in the extract linked to a GP record; "
         f"pairwise precision {precision:.4f}, recall {recall:.4f} against the synthetic truth")
    _say(f"   visits of opted-out people left in the extract: {left_in} (the fire service holds "
         "no NHS numbers; their clusters were removed whole)")
    checks += [
        ("fire visits linked with precision >= 0.95", precision >= 0.95),
        ("fire visits linked with recall >= 0.90", recall >= 0.90),
    ]

    _say("\nChecks:")
    for name, ok in checks:
        _say(f"   [{'ok' if ok else 'FAILED'}] {name}")
    return 0 if all(ok for _, ok in checks) else 1
