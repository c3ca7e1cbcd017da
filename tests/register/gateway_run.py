"""A real gateway run for the register's tests: providers, opt-outs, projects, extracts.

Everything goes through the gRPC API of a gateway on a free loopback port (EXAMPLE keys), then
the gateway stops and the data directory is left for the register to read. The run also keeps
every raw identifier it sent and every token the gateway issued, for the tests that scan the
built site for them.
"""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pyarrow as pa
import pyarrow.parquet as pq

from pseudogate.core.arrow_ipc import ipc_stream_bytes, text_table
from pseudogate.service.app import GatewaySettings, start_gateway
from pseudogate.tools.demo import COUNCIL_POLICY, EXTRACT_POLICY, GP_POLICY
from pseudogate.tools.synthetic import make_people
from pseudogate.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    audit_pb2,
    audit_pb2_grpc,
    dataset_pb2,
    dataset_pb2_grpc,
    extract_pb2,
    extract_pb2_grpc,
)

DIAGNOSES = ["asthma", "diabetes", "hypertension", "copd", "depression", "none"]
PACKAGES = ["home care", "day centre", "meals", "reablement"]
SMALL_POLICY = EXTRACT_POLICY.replace("name: frailty-study", "name: small-study")
#: The public statements of the run's projects, given to CreateProject as a researcher would.
STATEMENTS: dict[str, dict[str, str]] = {
    "frailty-study": {
        "title": "Frailty <and> falls in older people",
        "purpose": "To learn which conditions make falls more likely in people over 70.\n"
                   "Findings go to GP practices & care services.",
        "legal_basis": "UK GDPR Art. 6(1)(e) and 9(2)(j)",
        "public_benefit": "Fewer falls, and earlier help for people at risk.",
    },
    "housing-study": {
        "title": "Social care and health",
        "purpose": "To plan council care with what GP records say about health.",
        "legal_basis": "UK GDPR Art. 6(1)(e) and 9(2)(h)",
        "public_benefit": "Care services planned for the people who need them.",
    },
}


@dataclass
class GatewayRun:
    data_dir: Path
    manifests: list[str] = field(default_factory=list)  # manifest_json as received
    raw_values: set[str] = field(default_factory=set)
    tokens: set[str] = field(default_factory=set)
    optout_people: int = 0
    people: list[int] = field(default_factory=list)  # distinct persons of each extract


def _submission(
    dataset: str, policy: str, organisation: str, columns: dict[str, list[str]]
) -> Iterator[dataset_pb2.SubmitDatasetRequest]:
    yield dataset_pb2.SubmitDatasetRequest(
        header=dataset_pb2.SubmissionHeader(dataset=dataset, policy=policy, organisation=organisation)
    )
    yield dataset_pb2.SubmitDatasetRequest(arrow_ipc=ipc_stream_bytes(text_table(columns)))


def _extract(channel: grpc.Channel, project: str, run: GatewayRun) -> None:
    stub = extract_pb2_grpc.ExtractServiceStub(channel)
    persons: set[str] = set()
    for message in stub.CreateExtract(extract_pb2.CreateExtractRequest(project=project)):
        if message.WhichOneof("payload") == "arrow_ipc":
            table = pa.ipc.open_stream(message.arrow_ipc).read_all()
            persons.update(v for v in table.column("person").to_pylist() if v)
        else:
            run.manifests.append(message.manifest_json)
    run.tokens.update(persons)
    run.people.append(len(persons))


def gateway_run(base: Path, *, population: int = 400) -> GatewayRun:
    """Run the story into ``base/data`` and return what the tests need."""
    policies = base / "policies"
    policies.mkdir(parents=True)
    (policies / "gp-ingest.yaml").write_text(GP_POLICY, encoding="utf-8")
    (policies / "council-ingest.yaml").write_text(COUNCIL_POLICY, encoding="utf-8")
    run = GatewayRun(data_dir=base / "data")
    rng = random.Random(11)
    people = make_people(population, seed=11)
    gp, council = people[: population * 7 // 10], people[population * 4 // 10 :]
    for p in people:
        run.raw_values.update(
            {p.nhs_number, p.given_name, p.family_name, p.date_of_birth, p.postcode, p.email}
        )
    gateway = start_gateway(
        GatewaySettings(port=0, insecure=True, data_dir=run.data_dir, policies=policies)
    )
    try:
        with grpc.insecure_channel(gateway.address) as channel:
            datasets = dataset_pb2_grpc.DatasetServiceStub(channel)
            datasets.SubmitDataset(_submission("gp_diagnoses", "gp-ingest", "gp-denbigh", {
                "nhs_number": [p.nhs_number for p in gp],
                "given_name": [p.given_name for p in gp],
                "family_name": [p.family_name for p in gp],
                "date_of_birth": [p.date_of_birth for p in gp],
                "sex": [p.sex for p in gp],
                "postcode": [p.postcode for p in gp],
                "diagnosis": [rng.choice(DIAGNOSES) for _ in gp],
            }))
            council_columns = {
                "nhs_number": [p.nhs_number for p in council],
                "full_name": [f"{p.given_name} {p.family_name}".upper() for p in council],
                "email": [p.email for p in council],
                "care_package": [rng.choice(PACKAGES) for _ in council],
            }
            for _ in range(2):  # two versions
                datasets.SubmitDataset(_submission(
                    "council_care", "council-ingest", "denbighshire-council", council_columns
                ))
            admin = admin_pb2_grpc.AdminServiceStub(channel)
            opted = rng.sample(people, 23)
            run.optout_people = len(opted)
            admin.ImportOptOuts(admin_pb2.ImportOptOutsRequest(
                nhs_numbers=[p.nhs_number for p in opted]
            ))
            for project, policy in (("frailty-study", EXTRACT_POLICY),
                                    ("housing-study", SMALL_POLICY)):
                admin.CreateProject(admin_pb2.CreateProjectRequest(
                    project=project, researcher="uni-bangor",
                    datasets=["gp_diagnoses", "council_care"], policy_yaml=policy,
                    expires="2099-12-31", **STATEMENTS[project],
                ))
            _extract(channel, "frailty-study", run)
            # The next releases a second later, as if the first had been made before an
            # upgrade (tests/register: a register whose first manifest was not kept).
            time.sleep(1.1)
            _extract(channel, "housing-study", run)
            _extract(channel, "frailty-study", run)
            audit_pb2_grpc.AuditServiceStub(channel).GetCheckpoint(audit_pb2.GetCheckpointRequest())
    finally:
        gateway.stop(grace=None)
    _stored_tokens(run)
    return run


def _stored_tokens(run: GatewayRun) -> None:
    """Every token the store holds: token columns of every version, and opt-out tokens."""
    for path in (run.data_dir / "datasets").rglob("*.parquet"):
        table = pq.read_table(path)
        for name in table.column_names:
            if name in ("nhs_number", "email"):
                run.tokens.update(v for v in table.column(name).to_pylist() if v)
    with sqlite3.connect(run.data_dir / "catalog.sqlite3") as db:
        run.tokens.update(r[0] for r in db.execute("SELECT token FROM optout_tokens"))
