"""Helpers for the store tests: keys with known material, policies, synthetic people, Arrow payloads."""

from __future__ import annotations

import base64
import hashlib
import hmac
import random
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path

from pseudogate.core.arrow_ipc import ipc_stream_bytes, text_table
from pseudogate.gateway import Store
from pseudogate.tools.synthetic import nhs_number

LINKAGE_KEY = bytes(range(32))
PROJECT_KEY = bytes(range(32, 64))
SIGNING_KEY = bytes(range(64, 96))

GP_POLICY = """\
version: 1
name: gp-ingest
columns:
  nhs_number:    {action: tokenise, kind: nhs_number, domain: person}
  given_name:    {action: drop}
  family_name:   {action: drop}
  email:         {action: tokenise, kind: email, domain: email}
  date_of_birth: {action: keep}
  sex:           {action: keep}
  diagnosis:     {action: keep}
"""

COUNCIL_POLICY = """\
version: 1
name: council-ingest
columns:
  nhs:          {action: tokenise, kind: nhs_number, domain: person}
  full_name:    {action: drop}
  postcode:     {action: drop}
  service:      {action: keep}
"""


def keyring_document() -> dict[str, object]:
    def entry(key_id: str, purpose: str, raw: bytes) -> dict[str, str]:
        return {
            "id": key_id,
            "purpose": purpose,
            "status": "primary",
            "created": "2025-01-01T00:00:00Z",
            "material": base64.b64encode(raw).decode(),
        }

    return {
        "version": 1,
        "keys": [
            entry("lk1", "linkage", LINKAGE_KEY),
            entry("pk1", "project", PROJECT_KEY),
            entry("sk1", "signing", SIGNING_KEY),
        ],
    }


class Clock:
    """A settable UTC clock."""

    def __init__(self, moment: datetime) -> None:
        self.now = moment

    def __call__(self) -> datetime:
        return self.now


def ipc(columns: Mapping[str, Sequence[str | None]]) -> bytes:
    """One complete Arrow IPC stream of utf8 columns."""
    return ipc_stream_bytes(text_table(columns))


def people(n: int, *, seed: int = 7) -> list[dict[str, str]]:
    """``n`` distinct synthetic people."""
    rng = random.Random(seed)
    seen: set[str] = set()
    out: list[dict[str, str]] = []
    given = ["Siân", "Gareth", "Zoë", "José", "Aoife", "Priya", "Kwame", "Mei"]
    family = ["O'Brien", "Jones", "Ødegård", "Patel", "Nowak", "Chen", "García", "Price"]
    while len(out) < n:
        number = nhs_number(rng)
        if number in seen:
            continue
        seen.add(number)
        g, f = rng.choice(given), rng.choice(family)
        out.append(
            {
                "nhs_number": number,
                "given_name": g,
                "family_name": f,
                "email": f"{g.lower()}.{len(out)}@example.org",
                "date_of_birth": f"{rng.randrange(1930, 2010)}-{rng.randrange(1, 13):02d}-"
                f"{rng.randrange(1, 29):02d}",
                "sex": rng.choice(["F", "M"]),
                "postcode": f"LL1{rng.randrange(10)} {rng.randrange(10)}AB",
            }
        )
    return out


def gp_columns(rows: Sequence[dict[str, str]], diagnoses: Sequence[str] | None = None) -> dict[str, list[str]]:
    diag = list(diagnoses) if diagnoses is not None else [f"D{i % 5}" for i in range(len(rows))]
    return {
        "nhs_number": [r["nhs_number"] for r in rows],
        "given_name": [r["given_name"] for r in rows],
        "family_name": [r["family_name"] for r in rows],
        "email": [r["email"] for r in rows],
        "date_of_birth": [r["date_of_birth"] for r in rows],
        "sex": [r["sex"] for r in rows],
        "diagnosis": diag,
    }


def council_columns(rows: Sequence[dict[str, str]]) -> dict[str, list[str]]:
    spaced = [f"{r['nhs_number'][:3]} {r['nhs_number'][3:6]} {r['nhs_number'][6:]}" for r in rows]
    return {
        "nhs": spaced,
        "full_name": [f"{r['given_name']} {r['family_name']}" for r in rows],
        "postcode": [r["postcode"] for r in rows],
        "service": [f"S{i % 3}" for i in range(len(rows))],
    }


def submit(store: Store, dataset: str, policy: str, org: str, *payloads: bytes) -> object:
    sub = store.begin_submission(dataset=dataset, policy_name=policy, organisation=org)
    for p in payloads:
        sub.add_arrow_ipc(p)
    sub.prepare()
    return sub.commit()


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())




def reference_token(material: bytes, key_id: str, info: str, value: str) -> str:
    """The token construction written out with the standard library only (RFC 5869 HKDF)."""
    prk = hmac.new(b"\x00" * 32, material, hashlib.sha256).digest()
    derived = hmac.new(prk, info.encode("utf-8") + b"\x01", hashlib.sha256).digest()
    mac = hmac.new(derived, value.encode("utf-8"), hashlib.sha256).digest()
    return key_id + "_" + base64.b32encode(mac[:20]).decode("ascii").rstrip("=").lower()


def linkage_token(value: str, domain: str = "person") -> str:
    return reference_token(LINKAGE_KEY, "lk1", "pseudogate/v1/domain/" + domain, value)


def project_token(project_id: str, linkage: str) -> str:
    return reference_token(PROJECT_KEY, "pk1", "pseudogate/v1/project/" + project_id, linkage)
