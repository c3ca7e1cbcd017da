"""The fault suite's test data and calls: synthetic people, policies, one request per state change.

Every direct identifier the suite sends (NHS numbers in several spellings, names, emails,
postcodes) comes from :data:`PEOPLE`, so the invariant checker can look for each of them in
every byte of a data directory afterwards (:data:`RAW_IDENTIFIERS`).
"""

from __future__ import annotations

import os
import random
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from pseudogate.core.arrow_ipc import ipc_stream_bytes, text_table
from pseudogate.tools.synthetic import Person, make_people, messy_nhs_number
from pseudogate.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    dataset_pb2,
    dataset_pb2_grpc,
    extract_pb2,
    extract_pb2_grpc,
)
from tests.statements import STATEMENTS

from .invariants import OPTOUTS, PROJECT, SUBMIT, RawIdentifiers

#: One seed for every random choice of the suite (kill delays, messy spellings). Failures print
#: it; set PSEUDOGATE_FAULT_SEED to replay another one.
SEED = int(os.environ.get("PSEUDOGATE_FAULT_SEED", "14"))

GP_DATASET = "gp_diagnoses"
COUNCIL_DATASET = "council_care"
GP_ORG = "gp-denbigh"
COUNCIL_ORG = "denbighshire-council"
TEMPLATE_PROJECT = "base-study"
NEW_PROJECT = "new-study"
RESEARCHER = "uni-bangor"
EXPIRES = "2099-12-31"

# Every direct identifier is tokenised or dropped at ingestion; only non-identifying columns
# are kept, so no raw identifier has a reason to reach the data directory.
GP_POLICY = """\
version: 1
name: gp-ingest
columns:
  nhs_number:    {action: tokenise, kind: nhs_number, domain: person}
  given_name:    {action: drop}
  family_name:   {action: drop}
  postcode:      {action: drop}
  date_of_birth: {action: keep}
  sex:           {action: keep}
  diagnosis:     {action: keep}
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
name: fault-study
columns:
  person:                     {action: keep}
  gp_diagnoses.date_of_birth: {action: generalise, hierarchy: {type: date, levels: [year, 5y, 10y]}}
  gp_diagnoses.sex:           {action: generalise, hierarchy: {type: suppress}}
  gp_diagnoses.diagnosis:     {action: keep}
  council_care.email:         {action: drop}
  council_care.care_package:  {action: keep}
privacy:
  k: 3
  suppression_limit: 0.1
"""

PEOPLE: tuple[Person, ...] = tuple(make_people(700, seed=14))
_GP_TEMPLATE = PEOPLE[:250]
_COUNCIL_TEMPLATE = PEOPLE[150:400]
_TEMPLATE_OPTOUTS = PEOPLE[380:400]
_SUBMISSION = PEOPLE[:600]  # the submission under test: gp_diagnoses version 2
_NEW_OPTOUTS = PEOPLE[600:640]
SUBMISSION_BATCHES = 4
SUBMISSION_ROWS = len(_SUBMISSION)
_DIAGNOSES = ("asthma", "diabetes", "hypertension", "copd", "none")
_PACKAGES = ("home care", "day centre", "meals")


def _raw_identifiers(people: Sequence[Person]) -> RawIdentifiers:
    names = {p.given_name for p in people} | {p.family_name for p in people}
    return RawIdentifiers(
        nhs_numbers=frozenset(p.nhs_number for p in people),
        emails=frozenset(p.email for p in people),
        postcodes=frozenset(p.postcode for p in people),
        names=frozenset(
            {n for n in names if len(n.encode()) >= 5}
            | {f"{p.given_name} {p.family_name}".upper() for p in people}
        ),
    )


RAW_IDENTIFIERS = _raw_identifiers(PEOPLE)


def write_policies(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "gp-ingest.yaml").write_text(GP_POLICY, encoding="utf-8")
    (folder / "council-ingest.yaml").write_text(COUNCIL_POLICY, encoding="utf-8")
    return folder


def _messy(people: Sequence[Person], salt: str) -> list[str]:
    rng = random.Random(f"{SEED}/{salt}")
    return [messy_nhs_number(p.nhs_number, rng) for p in people]


def gp_batch(people: Sequence[Person], salt: str) -> bytes:
    rng = random.Random(f"{SEED}/{salt}/gp")
    return ipc_stream_bytes(
        text_table(
            {
                "nhs_number": _messy(people, salt),
                "given_name": [p.given_name for p in people],
                "family_name": [p.family_name for p in people],
                "postcode": [p.postcode for p in people],
                "date_of_birth": [p.date_of_birth for p in people],
                "sex": [p.sex for p in people],
                "diagnosis": [rng.choice(_DIAGNOSES) for _ in people],
            }
        )
    )


def council_batch(people: Sequence[Person]) -> bytes:
    rng = random.Random(f"{SEED}/council")
    return ipc_stream_bytes(
        text_table(
            {
                "nhs_number": _messy(people, "council"),
                "full_name": [f"{p.given_name} {p.family_name}".upper() for p in people],
                "email": [p.email for p in people],
                "care_package": [rng.choice(_PACKAGES) for _ in people],
            }
        )
    )


def header(dataset: str, policy: str, organisation: str) -> dataset_pb2.SubmitDatasetRequest:
    return dataset_pb2.SubmitDatasetRequest(
        header=dataset_pb2.SubmissionHeader(
            dataset=dataset, policy=policy, organisation=organisation
        )
    )


def gp_header() -> dataset_pb2.SubmitDatasetRequest:
    return header(GP_DATASET, "gp-ingest", GP_ORG)


def submission_batches(
    people: Sequence[Person] = _SUBMISSION, *, parts: int = SUBMISSION_BATCHES
) -> list[bytes]:
    """The submission under test, as several Arrow IPC messages."""
    size = -(-len(people) // parts)
    return [gp_batch(people[i : i + size], f"part{i}") for i in range(0, len(people), size)]


def large_submission(rows: int = 20_000, *, parts: int = 8) -> list[bytes]:
    """About 1 MB of Parquet once stored: more than a nearly full disk has room for."""
    people = (PEOPLE * (rows // len(PEOPLE) + 1))[:rows]
    return submission_batches(people, parts=parts)


def project_request(project: str = NEW_PROJECT) -> admin_pb2.CreateProjectRequest:
    return admin_pb2.CreateProjectRequest(
        project=project,
        researcher=RESEARCHER,
        datasets=[GP_DATASET, COUNCIL_DATASET],
        policy_yaml=EXTRACT_POLICY,
        expires=EXPIRES,
        **STATEMENTS,
    )


def optouts_request(people: Sequence[Person] = _NEW_OPTOUTS) -> admin_pb2.ImportOptOutsRequest:
    return admin_pb2.ImportOptOutsRequest(nhs_numbers=_messy(people, "optouts"))


def extract_request(project: str = TEMPLATE_PROJECT) -> extract_pb2.CreateExtractRequest:
    return extract_pb2.CreateExtractRequest(project=project)


def build_template(channel: grpc.Channel) -> None:
    """The state every fault starts from: two datasets, a project and an opt-out snapshot."""
    datasets = dataset_pb2_grpc.DatasetServiceStub(channel)
    datasets.SubmitDataset(
        requests(gp_header(), [gp_batch(_GP_TEMPLATE, "template")]), timeout=60
    )
    council = header(COUNCIL_DATASET, "council-ingest", COUNCIL_ORG)
    datasets.SubmitDataset(requests(council, [council_batch(_COUNCIL_TEMPLATE)]), timeout=60)
    admin = admin_pb2_grpc.AdminServiceStub(channel)
    admin.CreateProject(project_request(TEMPLATE_PROJECT), timeout=60)
    admin.ImportOptOuts(optouts_request(_TEMPLATE_OPTOUTS), timeout=60)


def requests(
    first: dataset_pb2.SubmitDatasetRequest, payloads: Sequence[bytes]
) -> Iterator[dataset_pb2.SubmitDatasetRequest]:
    yield first
    for payload in payloads:
        yield dataset_pb2.SubmitDatasetRequest(arrow_ipc=payload)


# -- one client call per state change -----------------------------------------------------------

EXTRACT = "CreateExtract"
#: The state changes under test, by RPC method name (an extract changes no state, but it must
#: be audited before any of it leaves the gateway).
CHANGES = (SUBMIT, PROJECT, OPTOUTS, EXTRACT)
CALL_TIMEOUT = 60.0


@dataclass
class Outcome:
    """What the client of one state change saw. ``sent`` is set once the whole request is on
    its way; ``paused`` where the client pauses (and at the end); it goes on at ``resume``."""

    code: grpc.StatusCode | None = None
    details: str = ""
    response: Any = None
    messages: int = 0  # extract messages received
    sent: threading.Event = field(default_factory=threading.Event)
    paused: threading.Event = field(default_factory=threading.Event)
    resume: threading.Event = field(default_factory=threading.Event)

    def pause(self) -> None:
        self.paused.set()
        self.resume.wait(CALL_TIMEOUT)


def _pausing_submission(
    outcome: Outcome, pause_after: int | None
) -> Iterator[dataset_pb2.SubmitDatasetRequest]:
    """The submission under test; pauses, stream open, after ``pause_after`` Arrow batches."""
    batches = submission_batches()
    yield gp_header()
    for n, payload in enumerate(batches):
        if n == pause_after:
            outcome.pause()
        yield dataset_pb2.SubmitDatasetRequest(arrow_ipc=payload)
    if pause_after == len(batches):
        outcome.pause()
    outcome.sent.set()


def run_change(
    channel: grpc.Channel, change: str, outcome: Outcome, *, pause: int | str | None = None
) -> Outcome:
    """Make one state change and record what came back. ``pause``: for a submission, the number
    of Arrow batches after which to pause; for an extract, "first_message"."""
    if change != SUBMIT:
        outcome.sent.set()  # one request message
    try:
        if change == SUBMIT:
            outcome.response = dataset_pb2_grpc.DatasetServiceStub(channel).SubmitDataset(
                _pausing_submission(outcome, pause if isinstance(pause, int) else None),
                timeout=CALL_TIMEOUT,
            )
        elif change == PROJECT:
            outcome.response = admin_pb2_grpc.AdminServiceStub(channel).CreateProject(
                project_request(), timeout=CALL_TIMEOUT
            )
        elif change == OPTOUTS:
            outcome.response = admin_pb2_grpc.AdminServiceStub(channel).ImportOptOuts(
                optouts_request(), timeout=CALL_TIMEOUT
            )
        else:
            stream = extract_pb2_grpc.ExtractServiceStub(channel).CreateExtract(
                extract_request(), timeout=CALL_TIMEOUT
            )
            for _ in stream:
                outcome.messages += 1
                if pause == "first_message" and outcome.messages == 1:
                    outcome.pause()
        outcome.code = grpc.StatusCode.OK
    except grpc.RpcError as exc:
        outcome.code, outcome.details = exc.code(), exc.details() or ""
    finally:
        outcome.paused.set()
    return outcome
