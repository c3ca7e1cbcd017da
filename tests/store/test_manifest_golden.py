"""Golden manifests: the JSON bytes of extracts built with fixed keys, data and clock.

The bytes in ``vectors/manifests.json`` were produced by the dict-building code before the
manifest became a typed value; any change to them would change content hashes' neighbours,
signatures and what auditors verify, so the typed ``Manifest`` must reproduce them exactly.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from pseudogate.core.keyring import Keyring
from pseudogate.core.manifest import Manifest, load_public_key_pem, verify_manifest_signature
from pseudogate.core.policy import Policy
from pseudogate.gateway import Store
from tests.statements import STATEMENTS

from .helpers import Clock, council_columns, gp_columns, ipc, people, submit
from .test_extract import EXTRACT_POLICY, IDENTITY_POLICY, identity

VECTORS = Path(__file__).parent / "vectors" / "manifests.json"


def _populate(store: Store, folk: list[dict[str, str]], gp: slice, council: slice) -> None:
    submit(store, "gp_diagnoses", "gp", "gp-org", ipc(gp_columns(folk[gp])))
    submit(store, "social_care", "council", "council-org", ipc(council_columns(folk[council])))


def _project(store: Store, policy: str) -> None:
    store.create_project(**STATEMENTS, project_id="p1", researcher="uni",
                         datasets=["gp_diagnoses", "social_care"], policy_text=policy,
                         policy_files={}, expires="2025-12-31")


def _engine(store: Store) -> dict[str, str]:
    """The real k-anonymity engine: k, l and loss from its report."""
    folk = people(40)
    _populate(store, folk, slice(0, 30), slice(20, 40))
    _project(store, EXTRACT_POLICY)
    out = {"engine": store.build_extract("p1", organisation="uni").manifest_json()}
    store.import_optouts([f["nhs_number"] for f in folk[:11]])
    out["engine_optouts"] = store.build_extract("p1", organisation="uni").manifest_json()
    return out


def _identity(store: Store) -> dict[str, str]:
    """A stand-in anonymiser whose report is a mapping, a policy without l, opt-outs."""
    folk = people(30)
    _populate(store, folk, slice(0, 25), slice(10, 30))
    _project(store, IDENTITY_POLICY)
    out = {"identity": store.build_extract("p1", organisation="uni").manifest_json()}
    store.import_optouts([f["nhs_number"] for f in folk[:3]])
    out["identity_few_optouts"] = store.build_extract("p1", organisation="uni").manifest_json()
    store.import_optouts([f["nhs_number"] for f in folk[:12]])
    out["identity_many_optouts"] = store.build_extract("p1", organisation="uni").manifest_json()
    store.import_optouts([f["nhs_number"] for f in folk])
    out["identity_everyone_opted_out"] = store.build_extract(
        "p1", organisation="uni").manifest_json()
    return out


def golden_manifests(
    root: Path, keyring: Keyring, policies: dict[str, Policy], clock: Clock
) -> dict[str, str]:
    """Every golden case's manifest JSON, built afresh under ``root``."""
    out: dict[str, str] = {}
    builders: list[tuple[str, Callable[[Store], dict[str, str]], object]] = [
        ("engine", _engine, None), ("identity", _identity, identity),
    ]
    for name, build, anonymiser in builders:
        options = {} if anonymiser is None else {"anonymiser": anonymiser}
        with Store.open(root / name, keyring=keyring, policies=policies, clock=clock,
                        **options) as store:  # type: ignore[arg-type]
            out.update(build(store))
    return out


def _without_linkage(text: str) -> str:
    """The JSON a gateway wrote before the ``linkage`` field (issue 10), less the signature."""
    data = json.loads(text)
    assert data.pop("linkage") == {"method": "exact"}
    data.pop("signature")
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def test_when_extracts_are_built_then_manifest_json_bytes_equal_the_golden_ones(
    tmp_path: Path, keyring: Keyring, policies: dict[str, Policy], clock: Clock
) -> None:
    """The goldens predate the ``linkage`` field: an exact project's manifest is the golden one
    with ``"linkage":{"method":"exact"}`` after ``key_ids`` (so the content, counts and hash are
    byte for byte those of before), signed over the new bytes."""
    expected = json.loads(VECTORS.read_text(encoding="utf-8"))
    built = golden_manifests(tmp_path, keyring, policies, clock)
    assert set(built) == set(expected)
    public = load_public_key_pem(keyring.signer().public_key_pem())
    for name, text in built.items():
        old = json.loads(expected[name])
        old.pop("signature")
        assert _without_linkage(text) == json.dumps(old, ensure_ascii=False, separators=(",", ":"))
        assert '"key_ids":{"linkage":"lk1","project":"pk1","signing":"sk1"},' \
               '"linkage":{"method":"exact"},"optout_snapshot"' in text
        verify_manifest_signature(Manifest.from_json(text), public)



def test_when_a_golden_manifest_is_parsed_then_it_serialises_to_the_same_bytes(
    keyring: Keyring,
) -> None:
    """Manifests made before the ``linkage`` field still parse, keep their bytes and verify."""
    public = load_public_key_pem(keyring.signer().public_key_pem())
    for text in json.loads(VECTORS.read_text(encoding="utf-8")).values():
        manifest = Manifest.from_json(text)
        assert manifest.linkage is None and "linkage" not in json.loads(text)
        verify_manifest_signature(manifest, public)
        assert manifest.to_json() == text
        body = {k: v for k, v in json.loads(text).items() if k != "signature"}
        assert manifest.signing_bytes() == json.dumps(
            body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
