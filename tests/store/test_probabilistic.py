"""Probabilistic projects: creation, clustering into ``person``, opt-outs, keys, migration.

Dataset versions with stored encodings are written here as the issue 10 contract describes
submissions storing them (column ``pg:linkage_encoding``, action ``encode``, sealed under the
version's linkage key), so these tests do not depend on the ingestion code.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pseudogate.audit.events import details_ok
from pseudogate.core.encoding import EncodingKeyMismatch
from pseudogate.core.errors import FailedPrecondition, InvalidInput
from pseudogate.core.keyring import Keyring
from pseudogate.core.linkage_method import Linkage, LinkageMethod
from pseudogate.core.names import ENCODING_COLUMN
from pseudogate.core.policy import Policy
from pseudogate.gateway import Store
from pseudogate.gateway import clusters as clusters_module
from pseudogate.gateway.changes import ChangeFacts
from pseudogate.store.catalog import ColumnInfo, VersionRecord
from pseudogate.tools.synthetic import Person, make_people
from tests.statements import STATEMENTS

from .helpers import LINKAGE_KEY, Clock, keyring_document, linkage_token, project_token
from .test_extract import identity

IDENTITY_FIELDS = ("given_name", "family_name", "date_of_birth", "sex", "postcode")

EXTRACT = """\
version: 1
name: fire-and-gp
columns:
  person:              {action: keep}
  fire.visit:          {action: keep}
  gp.diagnosis:        {action: keep}
privacy:
  k: 2
  suppression_limit: 1
"""


def put_version(
    store: Store,
    dataset: str,
    *,
    kept: Mapping[str, Sequence[str]],
    nhs: Sequence[str] | None = None,
    identity_fields: Mapping[str, Sequence[str]] | None = None,
    key_id: str = "lk1",
    organisation: str = "org",
) -> VersionRecord:
    """Store a dataset version as a submission under the contract would (tokens, kept
    columns, then the sealed encodings last)."""
    columns: dict[str, pa.Array] = {}
    infos: list[ColumnInfo] = []
    n = len(next(iter(kept.values())))
    if nhs is not None:
        tokeniser = store.keyring.linkage_tokeniser("person", key_id=key_id)
        columns["nhs_number"] = pa.array(
            [tokeniser.token(v) if v else "" for v in nhs], type=pa.string())
        infos.append(ColumnInfo("nhs_number", "tokenise", "person", "nhs_number"))
    for name, values in kept.items():
        columns[name] = pa.array(list(values), type=pa.string())
        infos.append(ColumnInfo(name, "keep"))
    if identity_fields is not None:
        encoder = store.keyring.linkage_encoder(key_id=key_id)
        sealed = encoder.seal(encoder.encode(dict(identity_fields), n=n))
        columns[ENCODING_COLUMN] = pa.array(sealed, type=pa.binary())
        infos.append(ColumnInfo(ENCODING_COLUMN, "encode", None, "pg-fbf-v1"))
    with store.catalog.transaction() as db:
        if store.catalog.dataset_owner(dataset, db) is None:
            store.catalog.insert_dataset(db, dataset, organisation, "2025-06-01T12:00:00Z")
        version = store.catalog.next_version(db, dataset)
        relative = store.files.relative_version_path(dataset, version)
        path = store.files.path(relative)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table(columns), path)
        record = VersionRecord(
            dataset=dataset, version=version, file=relative, rows=n, columns=tuple(infos),
            policy_name="test", policy_fingerprint="0" * 64, linkage_key_id=key_id,
            organisation=organisation, created_at="2025-06-01T12:00:00Z",
        )
        store.catalog.insert_version(db, record)
    return record


def identity_of(people: Sequence[Person]) -> dict[str, list[str]]:
    return {f: [getattr(p, f) for p in people] for f in IDENTITY_FIELDS}


def typo(people: Sequence[Person], rng: random.Random) -> dict[str, list[str]]:
    """Identity fields as another provider types them: case, a dropped letter, a missing sex."""
    out = identity_of(people)
    for i in range(len(people)):
        if rng.random() < 0.3:
            name = out["family_name"][i]
            cut = rng.randrange(1, len(name))
            out["family_name"][i] = name[:cut] + name[cut + 1:]
        if rng.random() < 0.3:
            out["given_name"][i] = out["given_name"][i].upper()
        if rng.random() < 0.2:
            out["sex"][i] = ""
    return out


@pytest.fixture
def raw_store(
    data_dir: Path, keyring: Keyring, policies: dict[str, Policy], clock: Clock
) -> Iterator[Store]:
    with Store.open(data_dir, keyring=keyring, policies=policies, clock=clock,
                    anonymiser=identity) as opened:
        yield opened


@pytest.fixture(scope="module")
def folk() -> list[Person]:
    return make_people(300, seed=5)


def _populate(store: Store, folk: list[Person]) -> None:
    """GP: people 0-199 with NHS numbers and identity; fire: people 100-249, no NHS numbers."""
    gp = folk[:200]
    fire = folk[100:250]
    put_version(store, "gp", kept={"diagnosis": [f"D{i % 4}" for i in range(len(gp))]},
                nhs=[p.nhs_number for p in gp], identity_fields=identity_of(gp))
    put_version(store, "fire", kept={"visit": [f"V{i % 3}" for i in range(len(fire))]},
                identity_fields=typo(fire, random.Random(3)))


def _project(store: Store, *, datasets: Sequence[str] = ("fire", "gp"), policy: str = EXTRACT,
             linkage: str = "probabilistic", threshold: float | None = None,
             project_id: str = "p1") -> None:
    store.create_project(**STATEMENTS, project_id=project_id, researcher="uni", datasets=list(datasets),
                         policy_text=policy, policy_files={}, expires="2025-12-31",
                         linkage=linkage, linkage_threshold=threshold)


def _nhs_person(project: str, p: Person) -> str:
    return project_token(project, linkage_token(p.nhs_number))


def reference_cluster_token(dataset: str, row: int, record: bytes) -> str:
    """docs/linkage.md, "Representative tokens", written out with the standard library."""
    info = b"pseudogate/v1/encoding/pg-fbf-v1/cluster"
    prk = hmac.new(b"\x00" * 32, LINKAGE_KEY, hashlib.sha256).digest()
    key = hmac.new(prk, info + b"\x01", hashlib.sha256).digest()
    message = f"{dataset}/{row}/{record.hex()}".encode()
    mac = hmac.new(key, message, hashlib.sha256).digest()[:20]
    return "lk1_" + base64.b32encode(mac).decode().rstrip("=").lower()


# -- creating projects ---------------------------------------------------------------------------


def test_when_a_project_is_created_without_linkage_then_it_is_exact(raw_store: Store) -> None:
    put_version(raw_store, "gp", kept={"diagnosis": ["D1"]}, nhs=["9434765919"])
    raw_store.create_project(
        **STATEMENTS,
        project_id="p0", researcher="uni", datasets=["gp"], policy_files={},
        policy_text=EXTRACT.replace("  fire.visit:          {action: keep}\n", ""),
        expires="2025-12-31",
    )
    record = raw_store.project("p0")
    assert (record.linkage, record.linkage_threshold) == ("exact", None)
    manifest = json.loads(raw_store.build_extract("p0", organisation="uni").manifest_json())
    assert manifest["linkage"] == {"method": "exact"}


def test_when_a_probabilistic_project_is_created_then_method_and_threshold_are_stored(
    raw_store: Store, folk: list[Person]
) -> None:
    _populate(raw_store, folk)
    _project(raw_store)
    _project(raw_store, project_id="p2", threshold=0.8)
    assert (raw_store.project("p1").linkage, raw_store.project("p1").linkage_threshold) == (
        "probabilistic", 0.5)
    assert raw_store.project("p2").linkage_threshold == 0.8


@pytest.mark.parametrize(
    ("linkage", "threshold", "message"),
    [
        ("probabilistic", 1.0, "strictly between 0 and 1"),
        ("probabilistic", -0.2, "strictly between 0 and 1"),
        ("probabilistic", float("nan"), "strictly between 0 and 1"),
        ("exact", 0.7, "applies to probabilistic linkage only"),
        ("", 0.7, "applies to probabilistic linkage only"),
        ("fuzzy", None, "unknown linkage method; the methods are exact, probabilistic"),
    ],
)
def test_when_linkage_options_do_not_fit_then_the_project_is_refused(
    raw_store: Store, folk: list[Person], linkage: str, threshold: float | None, message: str
) -> None:
    _populate(raw_store, folk)
    with pytest.raises(InvalidInput, match=message):
        _project(raw_store, linkage=linkage, threshold=threshold)
    assert raw_store.catalog.project("p1") is None


def test_when_an_exact_project_names_a_dataset_without_nhs_numbers_then_it_is_refused(
    raw_store: Store, folk: list[Person]
) -> None:
    _populate(raw_store, folk)
    with pytest.raises(FailedPrecondition, match="dataset 'fire' .* has 0 columns tokenised"):
        _project(raw_store, linkage="exact")


def test_when_a_dataset_has_neither_nhs_numbers_nor_encodings_then_probabilistic_is_refused(
    raw_store: Store, folk: list[Person]
) -> None:
    _populate(raw_store, folk)
    put_version(raw_store, "notes", kept={"note": ["a", "b"]})
    with pytest.raises(FailedPrecondition) as refused:
        _project(raw_store, datasets=["fire", "gp", "notes"],
                 policy=EXTRACT.replace("privacy", "  notes.note: {action: keep}\nprivacy"))
    assert "dataset 'notes' (version 1) has neither a column tokenised under domain " \
           "'person' nor linkage encodings" in str(refused.value)


def test_when_a_later_version_lacks_both_then_the_extract_is_refused_naming_it(
    raw_store: Store, folk: list[Person]
) -> None:
    _populate(raw_store, folk)
    _project(raw_store)
    put_version(raw_store, "fire", kept={"visit": ["V1"]})  # no encodings, no NHS
    with pytest.raises(FailedPrecondition, match="dataset 'fire' \\(version 2\\) has neither"):
        raw_store.build_extract("p1", organisation="uni")


def test_when_a_project_is_created_then_its_audit_details_record_the_linkage(
    raw_store: Store, folk: list[Person]
) -> None:
    _populate(raw_store, folk)
    recorded: list[ChangeFacts] = []
    raw_store.create_project(**STATEMENTS, project_id="p1", researcher="uni", datasets=["fire", "gp"],
                             policy_text=EXTRACT, policy_files={}, expires="2025-12-31",
                             linkage="probabilistic", linkage_threshold=0.7,
                             record=recorded.append)
    details = recorded[0].details
    assert details is not None
    assert details["linkage"] == "probabilistic" and details["linkage_threshold"] == 0.7
    assert {name: details[name] for name in STATEMENTS} == STATEMENTS
    assert details_ok(details)


@pytest.mark.parametrize(
    ("entry", "ok"),
    [
        ({"linkage": "exact"}, True),
        ({"linkage": "probabilistic", "linkage_threshold": 0.5}, True),
        ({"linkage": "fuzzy"}, False),
        ({"linkage": "probabilistic", "linkage_threshold": 1.5}, False),
        ({"linkage": "probabilistic", "linkage_threshold": True}, False),
        ({"linkage": "probabilistic", "linkage_threshold": "0.5"}, False),
    ],
)
def test_when_audit_details_hold_a_linkage_then_only_the_known_shapes_pass(
    entry: dict[str, object], ok: bool
) -> None:
    assert details_ok({"change": "a" * 32, **entry}) is ok


# -- extracts ------------------------------------------------------------------------------------


def test_when_people_have_no_nhs_number_then_they_are_linked_to_their_nhs_records(
    raw_store: Store, folk: list[Person]
) -> None:
    _populate(raw_store, folk)
    _project(raw_store)
    extract = raw_store.build_extract("p1", organisation="uni")
    table = extract.table
    assert len(table) == 150  # one row per fire record: each fire person is one GP patient
    fire = folk[100:250]
    persons = table["person"].tolist()
    nhs_tokens = {_nhs_person("p1", p) for p in folk[:200]}
    both = fire[:100]
    linked = sum(persons[i] == _nhs_person("p1", p) for i, p in enumerate(both))
    assert linked >= 95  # typos, and still their GP record's person
    assert all(table["gp.diagnosis"][i] != "" for i, p in enumerate(both)
               if persons[i] == _nhs_person("p1", p))
    fire_only = persons[100:]
    assert not set(fire_only) & nhs_tokens  # nobody with a GP record
    assert len(set(fire_only)) == 50 and set(table["gp.diagnosis"][100:]) == {""}
    manifest = json.loads(extract.manifest_json())
    assert manifest["linkage"] == {"method": "probabilistic", "threshold": 0.5,
                                   "encoding": "pg-fbf-v1"}


def test_when_a_cluster_has_no_nhs_number_then_its_token_recomputes_from_the_documentation(
    raw_store: Store, folk: list[Person], keyring: Keyring
) -> None:
    _populate(raw_store, folk)
    _project(raw_store)
    persons = raw_store.build_extract("p1", organisation="uni").table["person"].tolist()
    fields = typo(folk[100:250], random.Random(3))
    record = keyring.linkage_encoder().encode(fields).records
    for row in (101, 120, 150):  # fire-only people: their own (first) record names the cluster
        expected = reference_cluster_token("fire", row, record[row - 1].tobytes())
        assert persons[row - 1] == project_token("p1", expected)


def test_when_the_data_does_not_change_then_the_extract_does_not_either(
    raw_store: Store, folk: list[Person]
) -> None:
    _populate(raw_store, folk)
    _project(raw_store)
    first = raw_store.build_extract("p1", organisation="uni")
    again = raw_store.build_extract("p1", organisation="uni")
    assert first.manifest.content_sha256 == again.manifest.content_sha256


def test_when_a_dataset_has_no_encodings_then_its_rows_link_by_nhs_number_alone(
    raw_store: Store, folk: list[Person]
) -> None:
    """An NHS-only dataset (as before issue 10) beside one with encodings and NHS numbers."""
    put_version(raw_store, "gp", kept={"diagnosis": ["D"] * 50},
                nhs=[p.nhs_number for p in folk[:50]])
    put_version(raw_store, "fire", kept={"visit": ["V"] * 60},
                nhs=[p.nhs_number if i % 2 else "" for i, p in enumerate(folk[20:80])],
                identity_fields=identity_of(folk[20:80]))
    _project(raw_store, datasets=["gp", "fire"])
    table = raw_store.build_extract("p1", organisation="uni").table
    assert table["person"].tolist() == [_nhs_person("p1", p) for p in folk[:50]]
    # fire's records with an NHS number link to GP rows; those without have only encodings,
    # and the GP rows have none to compare them with
    assert (table["fire.visit"] == "V").tolist() == [i >= 20 and i % 2 == 1 for i in range(50)]


def test_when_an_opted_out_person_is_in_a_cluster_then_the_cluster_is_removed_whole(
    raw_store: Store, folk: list[Person]
) -> None:
    _populate(raw_store, folk)
    _project(raw_store)  # fire first: fire records without NHS numbers drive the join
    _project(raw_store, project_id="p2", datasets=["gp", "fire"])
    before = raw_store.build_extract("p1", organisation="uni").table
    opted = [p for i, p in enumerate(folk[100:200]) if before["person"][i] == _nhs_person("p1", p)]
    opted = opted[:12]
    assert len(opted) == 12
    raw_store.import_optouts([p.nhs_number for p in opted])
    extract = raw_store.build_extract("p1", organisation="uni")
    after = extract.table
    assert len(after) == len(before) - 12  # their fire records (no NHS number) are gone too
    assert not {_nhs_person("p1", p) for p in opted} & set(after["person"])
    assert json.loads(extract.manifest_json())["optouts_removed"] == 12
    gp_first = raw_store.build_extract("p2", organisation="uni").table
    assert len(gp_first) == 200 - 12
    assert not {_nhs_person("p2", p) for p in opted} & set(gp_first["person"])


def test_when_versions_were_encoded_under_different_keys_then_the_extract_names_the_datasets(
    tmp_path: Path, policies: dict[str, Policy], clock: Clock, folk: list[Person]
) -> None:
    document = keyring_document()
    document["keys"].append({  # type: ignore[attr-defined]
        "id": "lk2", "purpose": "linkage", "status": "active",
        "created": "2025-02-01T00:00:00Z", "material": base64.b64encode(b"\x07" * 32).decode(),
    })
    keyring = Keyring.from_document(document)
    with Store.open(tmp_path / "d", keyring=keyring, policies=policies, clock=clock,
                    anonymiser=identity) as store:
        _populate(store, folk)
        _project(store)
        put_version(store, "fire", kept={"visit": ["V"]}, identity_fields=identity_of(folk[:1]),
                    key_id="lk2")
        with pytest.raises(EncodingKeyMismatch) as refused:
            store.build_extract("p1", organisation="uni")
    assert str(refused.value).startswith(
        "datasets 'fire' (linkage key 'lk2') and 'gp' (linkage key 'lk1') were encoded")


def test_when_a_cluster_would_hold_two_nhs_numbers_then_the_extract_fails_loudly(
    raw_store: Store, folk: list[Person], monkeypatch: pytest.MonkeyPatch
) -> None:
    _populate(raw_store, folk)
    _project(raw_store)

    class Everyone:
        def __init__(self, n: int) -> None:
            self.labels = np.zeros(n, dtype=np.int64)

    monkeypatch.setattr(clusters_module, "link", lambda table, **_: Everyone(len(table)))
    with pytest.raises(RuntimeError, match="two different NHS linkage tokens"):
        raw_store.build_extract("p1", organisation="uni")


# -- old catalogs --------------------------------------------------------------------------------


def test_when_a_catalog_predates_linkage_methods_then_its_projects_stay_exact(
    data_dir: Path, keyring: Keyring, policies: dict[str, Policy], clock: Clock
) -> None:
    policy = EXTRACT.replace("  fire.visit:          {action: keep}\n", "")
    with Store.open(data_dir, keyring=keyring, policies=policies, clock=clock,
                    anonymiser=identity) as store:
        put_version(store, "gp", kept={"diagnosis": ["D1"]}, nhs=["9434765919"])
        store.create_project(**STATEMENTS, project_id="old", researcher="uni", datasets=["gp"],
                             policy_text=policy, policy_files={}, expires="2025-12-31")
        before = store.build_extract("old", organisation="uni").manifest.content_sha256
    with sqlite3.connect(data_dir / "catalog.sqlite3") as db:  # as a catalog made before
        db.execute("ALTER TABLE projects DROP COLUMN linkage_threshold")
        db.execute("ALTER TABLE projects DROP COLUMN linkage")
    db.close()
    with Store.open(data_dir, keyring=keyring, policies=policies, clock=clock,
                    anonymiser=identity) as store:
        assert store.project("old").linkage == "exact"
        extract = store.build_extract("old", organisation="uni")
        assert extract.manifest.linkage == Linkage(LinkageMethod.EXACT)
        assert extract.manifest.content_sha256 == before
