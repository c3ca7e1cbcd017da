"""Extracts built on a Dask cluster (joined there for exact projects, re-keyed and anonymised
there for all): the same rows and manifest as the local path."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pseudogate.batch.extracts import ClusterAnonymiser
from pseudogate.core.errors import ConfigurationError
from pseudogate.core.keyring import Keyring
from pseudogate.core.policy import parse_policy
from pseudogate.gateway import Store
from tests.statements import STATEMENTS
from tests.store.helpers import (
    COUNCIL_POLICY,
    GP_POLICY,
    Clock,
    council_columns,
    gp_columns,
    ipc,
    keyring_document,
    people,
    submit,
)
from tests.store.test_extract import EXTRACT_POLICY
from tests.store.test_identity_join import CARE

ROOT = Path(__file__).resolve().parents[2]
PLAIN_POLICY = """\
version: 1
name: plain
columns:
  person:                     {action: keep}
  gp_diagnoses.date_of_birth: {action: generalise, hierarchy: {type: date, levels: [year, 10y]}}
  gp_diagnoses.sex:           {action: generalise, hierarchy: {type: suppress}}
  gp_diagnoses.diagnosis:     {action: keep, sensitive: true}
  service:                    {action: keep}
privacy: {k: 3, l: 2, suppression_limit: 0.2}
"""


def _extract(data_dir: Path, *, opted: int = 12, **options: object) -> object:
    policies = {"gp": parse_policy(GP_POLICY, origin="gp.yaml"),
                "council": parse_policy(COUNCIL_POLICY, origin="council.yaml")}
    clock = Clock(datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC))
    keyring = Keyring.from_document(keyring_document())
    with Store.open(data_dir, keyring=keyring, policies=policies, clock=clock,
                    **options) as store:  # type: ignore[arg-type]
        folk = people(40)
        gp = folk[:30] + folk[:5]
        council = folk[10:40]
        submit(store, "gp_diagnoses", "gp", "gp-org", ipc(gp_columns(gp)))
        submit(store, "social_care", "council", "council-org", ipc(council_columns(council)))
        store.import_optouts([p["nhs_number"] for p in folk[:opted]])
        store.create_project(**STATEMENTS, project_id="p1", researcher="uni",
                             datasets=["gp_diagnoses", "social_care"], policy_text=EXTRACT_POLICY,
                             policy_files={}, expires="2025-12-31")
        return store.build_extract("p1", organisation="uni")


def test_an_extract_anonymised_on_the_cluster_equals_the_local_one(
    tmp_path: Path, dask_runner: object,
) -> None:
    local = _extract(tmp_path / "local")
    work = tmp_path / "work"
    cluster = _extract(tmp_path / "dask", anonymiser=ClusterAnonymiser(
        runner=dask_runner, rows_per_partition=4, work_dir=work))  # type: ignore[arg-type]
    assert cluster.arrow.equals(local.arrow)  # type: ignore[attr-defined]
    assert cluster.manifest_json() == local.manifest_json()  # type: ignore[attr-defined]
    assert local.manifest.suppressed > 0 or local.manifest.rows > 0  # type: ignore[attr-defined]
    assert list(work.iterdir()) == []  # the working folder is removed


def test_an_extract_through_a_scheduler_address_equals_the_local_one(
    tmp_path: Path, scheduler: str,
) -> None:
    local = _extract(tmp_path / "local")
    cluster = _extract(tmp_path / "dask", anonymiser=ClusterAnonymiser(scheduler))
    assert cluster.manifest_json() == local.manifest_json()  # type: ignore[attr-defined]


def test_a_plaintext_scheduler_on_another_machine_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="tls://"):
        ClusterAnonymiser("tcp://10.1.2.3:8786")


def test_importing_the_cluster_anonymiser_imports_no_dask() -> None:
    code = ("import sys, pseudogate.batch.extracts, pseudogate.service.app, "
            "pseudogate.cli.serve; assert not [m for m in sys.modules if m.split('.')[0] in "
            "('dask', 'distributed')], 'dask imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_the_shipped_project_key_makes_the_projects_tokens() -> None:
    import pickle

    keyring = Keyring.from_document(keyring_document())
    shipped = pickle.loads(pickle.dumps(keyring.project_key_to_ship("p1")))
    values = ["a_token", "another"]
    assert shipped.tokeniser().tokens(values) == keyring.project_tokeniser("p1").tokens(values)
    assert "p1" in repr(shipped) and "derived" not in repr(shipped)


def test_the_plain_call_equals_the_local_anonymiser(dask_runner: object) -> None:
    import pandas as pd

    from pseudogate.anonymity import anonymise

    policy = parse_policy(PLAIN_POLICY, origin="p.yaml")
    rows = 60
    frame = pd.DataFrame({
        "person": [f"t{i % 45}" for i in range(rows)],
        "gp_diagnoses.date_of_birth": [f"19{50 + i % 40}-0{1 + i % 9}-1{i % 10}"
                                       for i in range(rows)],
        "gp_diagnoses.sex": ["F" if i % 3 else "M" for i in range(rows)],
        "gp_diagnoses.diagnosis": [f"D{i % 4}" for i in range(rows)],
        "service": [f"S{i % 3}" for i in range(rows)],
    })
    local = anonymise(frame, policy, person_column="person")
    cluster = ClusterAnonymiser(runner=dask_runner, rows_per_partition=7)(  # type: ignore[arg-type]
        frame, policy, person_column="person")
    pd.testing.assert_frame_equal(cluster.table.reset_index(drop=True),
                                  local.table.reset_index(drop=True), check_dtype=False)
    assert (cluster.report.suppressed, cluster.report.k_achieved) == (
        local.report.suppressed, local.report.k_achieved)


def test_an_extract_with_every_person_opted_out_is_empty_on_the_cluster_too(
    tmp_path: Path, dask_runner: object,
) -> None:
    local = _extract(tmp_path / "local", opted=40)
    cluster = _extract(tmp_path / "dask", opted=40, anonymiser=ClusterAnonymiser(
        runner=dask_runner))  # type: ignore[arg-type]
    assert local.manifest.rows == 0  # type: ignore[attr-defined]
    assert cluster.manifest_json() == local.manifest_json()  # type: ignore[attr-defined]


PROBABILISTIC_POLICY = """\
version: 1
name: fire-and-gp
columns:
  person:              {action: keep}
  fire.visit:          {action: generalise, hierarchy: {type: suppress}}
  gp.diagnosis:        {action: keep, sensitive: true}
privacy:
  k: 2
  l: 2
  suppression_limit: 0.05
"""


def test_a_probabilistic_projects_extract_on_the_cluster_equals_the_local_one(
    tmp_path: Path, dask_runner: object,
) -> None:
    from pseudogate.tools.synthetic import make_people
    from tests.store import test_probabilistic as prob

    folk = make_people(300, seed=5)
    keyring = Keyring.from_document(keyring_document())
    clock = Clock(datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC))
    manifests = []
    for name, options in (("local", {}), ("dask", {"anonymiser": ClusterAnonymiser(
            runner=dask_runner, rows_per_partition=40)})):  # type: ignore[arg-type]
        with Store.open(tmp_path / name, keyring=keyring, policies={}, clock=clock,
                        **options) as store:  # type: ignore[arg-type]
            prob._populate(store, folk)
            prob._project(store, policy=PROBABILISTIC_POLICY)
            extract = store.build_extract("p1", organisation="uni")
            assert extract.manifest.linkage.probabilistic and extract.rows > 40
            manifests.append((extract.manifest_json(), extract.arrow))
    assert manifests[0][0] == manifests[1][0]
    assert manifests[0][1].equals(manifests[1][1])


def test_an_unreachable_scheduler_fails_the_extract_as_unavailable(tmp_path: Path) -> None:
    import dask

    from pseudogate.core.errors import Unavailable

    anonymiser = ClusterAnonymiser("tcp://127.0.0.1:1", work_dir=tmp_path / "work")
    with dask.config.set({"distributed.comm.timeouts.connect": "2s"}), \
            pytest.raises(Unavailable, match="could not be reached"):
        _extract(tmp_path / "d", anonymiser=anonymiser)
    assert list((tmp_path / "work").iterdir()) == []


# -- the join on the workers (exact projects) -------------------------------------------------

CARE_POLICY = CARE  # the care providers' ingestion policy of the identity-join tests

CARE_EXTRACT = """\
version: 1
name: three-services
columns:
  person:           {action: keep}
  care_a.service:   {action: generalise, hierarchy: {type: suppress}}
  care_b.service:   {action: keep}
  care_c.service:   {action: keep}
privacy: {k: 2, suppression_limit: 0.5}
"""


def _care_rows(folk: list[dict[str, str]], prefix: str, *, blank_every: int = 0,
               seed: int | None = None) -> dict[str, list[str]]:
    """Care records of ``folk`` in order (shuffled with ``seed``); every ``blank_every``-th has
    no NHS number (an empty token: it links nobody)."""
    import random

    rows = list(folk)
    if seed is not None:
        random.Random(seed).shuffle(rows)
    blank = [blank_every and i % blank_every == blank_every - 1 for i in range(len(rows))]
    return {"nhs": ["" if b else r["nhs_number"] for r, b in zip(rows, blank, strict=True)],
            "forename": [r["given_name"] for r in rows],
            "dob": [r["date_of_birth"] for r in rows],
            "service": [f"{prefix}{i % 4}" for i in range(len(rows))]}


def _split(columns: dict[str, list[str]], pieces: int) -> list[bytes]:
    """The rows as several Arrow payloads (the version file gets several row groups)."""
    n = len(next(iter(columns.values())))
    step = -(-n // pieces)
    return [ipc({k: v[s:s + step] for k, v in columns.items()}) for s in range(0, n, step)]


def _care_extract(data_dir: Path, *, opted: int, blanks: bool = True,
                  anonymiser: object | None = None) -> object:
    """Three datasets, one-to-many matches both ways, records without a number, opt-outs."""
    clock = Clock(datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC))
    keyring = Keyring.from_document(keyring_document())
    options = {} if anonymiser is None else {"anonymiser": anonymiser}
    with Store.open(data_dir, keyring=keyring, clock=clock,
                    policies={"care": parse_policy(CARE_POLICY, origin="care.yaml")},
                    **options) as store:  # type: ignore[arg-type]
        folk = people(30)
        first = [folk[i % 25] for i in range(45)]  # people repeat in the first dataset too
        submit(store, "care_a", "care", "council",
               *_split(_care_rows(first, "a", blank_every=7 if blanks else 0), 3))
        submit(store, "care_b", "care", "council",
               ipc(_care_rows(folk[5:30] + folk[5:15], "b", blank_every=6, seed=1)))
        submit(store, "care_c", "care", "council",
               ipc(_care_rows(folk[8:20] * 3 + folk[26:], "c", blank_every=5, seed=2)))
        if opted:
            store.import_optouts([p["nhs_number"] for p in folk[:opted]])
        store.create_project(**STATEMENTS, project_id="p1", researcher="uni",
                             datasets=["care_a", "care_b", "care_c"], policy_text=CARE_EXTRACT,
                             policy_files={}, expires="2025-12-31")
        return store.build_extract("p1", organisation="uni")


@pytest.mark.parametrize(("opted", "rows_per_partition"),
                         [(0, 4), (12, 4), (12, 1000), (3, 1), (20, 7)])
def test_an_exact_projects_join_on_the_workers_equals_the_local_extract(
    tmp_path: Path, dask_runner: object, opted: int, rows_per_partition: int,
) -> None:
    local = _care_extract(tmp_path / "local", opted=opted)
    work = tmp_path / "work"
    cluster = _care_extract(tmp_path / "dask", opted=opted, anonymiser=ClusterAnonymiser(
        runner=dask_runner, rows_per_partition=rows_per_partition,  # type: ignore[arg-type]
        work_dir=work))
    assert local.rows > 0  # type: ignore[attr-defined]
    if not opted:  # one-to-many matches: more rows than the first dataset's 45
        assert local.rows > 45  # type: ignore[attr-defined]
    assert cluster.arrow.equals(local.arrow)  # type: ignore[attr-defined]
    assert cluster.manifest_json() == local.manifest_json()  # type: ignore[attr-defined]
    assert cluster.manifest.optouts_removed == local.manifest.optouts_removed  # type: ignore[attr-defined]
    assert list(work.iterdir()) == []


def test_an_exact_projects_extract_left_empty_by_opt_outs_is_empty_on_the_workers_too(
    tmp_path: Path, dask_runner: object,
) -> None:
    local = _care_extract(tmp_path / "local", opted=30, blanks=False)
    cluster = _care_extract(tmp_path / "dask", opted=30, blanks=False,
                            anonymiser=ClusterAnonymiser(runner=dask_runner,  # type: ignore[arg-type]
                                                         rows_per_partition=10))
    assert local.manifest.rows == 0 and local.manifest.optouts_removed == 25  # type: ignore[attr-defined]
    assert cluster.arrow.equals(local.arrow)  # type: ignore[attr-defined]
    assert cluster.manifest_json() == local.manifest_json()  # type: ignore[attr-defined]


class _Recording(ClusterAnonymiser):
    """Runs in this process and records what the gateway handed over."""

    def __init__(self, work_dir: Path) -> None:
        from pseudogate.batch.runner import InProcess

        super().__init__(runner=InProcess(), rows_per_partition=8, work_dir=work_dir)
        self.joins: list[object] = []
        self.tables: list[object] = []

    def join_and_anonymise(self, join, policy, **options):  # type: ignore[no-untyped-def]
        self.joins.append(join)
        return super().join_and_anonymise(join, policy, **options)

    def rekey_and_anonymise(self, table, policy, **options):  # type: ignore[no-untyped-def]
        self.tables.append(table)
        return super().rekey_and_anonymise(table, policy, **options)


def test_an_exact_project_is_not_joined_by_the_gateway_the_seam_gets_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    import pyarrow as pa

    from pseudogate.gateway import extract as gateway_extract
    from pseudogate.gateway.extract import ExtractJoin

    local = _care_extract(tmp_path / "local", opted=12)

    def refuse(*args: object, **kwargs: object) -> object:
        raise AssertionError("the gateway joined an exact project's versions")

    monkeypatch.setattr(gateway_extract, "_joined", refuse)
    recording = _Recording(tmp_path / "work")
    cluster = _care_extract(tmp_path / "seam", opted=12, anonymiser=recording)
    assert recording.tables == [] and len(recording.joins) == 1
    join = recording.joins[0]
    assert isinstance(join, ExtractJoin)
    data = (tmp_path / "seam").resolve()
    assert [Path(s.path) for s in join.sources] == [
        data / "datasets" / name / "1.parquet" for name in ("care_a", "care_b", "care_c")]
    assert [s.columns for s in join.sources] == [("nhs", "service")] * 3  # no encodings
    assert isinstance(join.optout_tokens, pa.Array) and len(join.optout_tokens) == 12
    assert join.rekey == ("person",)
    assert cluster.arrow.equals(local.arrow)  # type: ignore[attr-defined]
    assert cluster.manifest_json() == local.manifest_json()  # type: ignore[attr-defined]


def test_a_probabilistic_project_is_joined_by_the_gateway_and_rekeyed_on_the_cluster(
    tmp_path: Path,
) -> None:
    from pseudogate.tools.synthetic import make_people
    from tests.store import test_probabilistic as prob

    recording = _Recording(tmp_path / "work")
    keyring = Keyring.from_document(keyring_document())
    clock = Clock(datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC))
    with Store.open(tmp_path / "d", keyring=keyring, policies={}, clock=clock,
                    anonymiser=recording) as store:  # type: ignore[arg-type]
        prob._populate(store, make_people(60, seed=5))
        prob._project(store, policy=PROBABILISTIC_POLICY)
        store.build_extract("p1", organisation="uni")
    assert recording.joins == [] and len(recording.tables) == 1


def test_a_stored_version_that_is_not_utf8_is_refused_on_the_workers_as_locally(
    tmp_path: Path, dask_runner: object,
) -> None:
    """A bad byte in a further dataset's row that matches nobody: the local path reads (and
    refuses) it, so the workers do too."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pseudogate.core.errors import FailedPrecondition

    folk = people(6)
    clock = Clock(datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC))
    keyring = Keyring.from_document(keyring_document())
    work = tmp_path / "work"
    for name, options in (("local", {}), ("dask", {"anonymiser": ClusterAnonymiser(
            runner=dask_runner, rows_per_partition=2, work_dir=work)})):  # type: ignore[arg-type]
        with Store.open(tmp_path / name, keyring=keyring, clock=clock,
                        policies={"care": parse_policy(CARE_POLICY, origin="care.yaml")},
                        **options) as store:  # type: ignore[arg-type]
            for dataset, rows in (("care_a", folk[:3]), ("care_b", folk[3:]),
                                  ("care_c", folk[:3])):
                submit(store, dataset, "care", "council", ipc(_care_rows(rows, dataset[-1])))
            store.create_project(**STATEMENTS, project_id="p1", researcher="uni",
                                 datasets=["care_a", "care_b", "care_c"],
                                 policy_text=CARE_EXTRACT, policy_files={}, expires="2025-12-31")
            version = store.catalog.latest_version("care_b")
            assert version is not None
            path = store.files.path(version.file)
            table = pq.read_table(path)
            at = table.schema.get_field_index("service")
            broken = pa.array([b"b0", b"b\xff", b"b2"], pa.binary()).view(pa.string())
            pq.write_table(table.set_column(at, table.schema.field(at), broken), path)
            with pytest.raises(FailedPrecondition, match="not UTF-8.*resubmit it"):
                store.build_extract("p1", organisation="uni")
    assert list(work.iterdir()) == []


def test_a_tokens_bucket_is_the_same_in_every_worker_process() -> None:
    """Workers started apart (other hash seeds) must put a person's rows in one bucket."""
    import os

    code = ("import pyarrow as pa; from pseudogate.batch.join import _buckets_of; "
            "print(_buckets_of(pa.array(['lk1_abc', 'lk1_def', '', 'x' * 50]), 97).tolist())")
    outputs = {subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                              text=True, cwd=ROOT,
                              env={**os.environ, "PYTHONHASHSEED": seed}).stdout
               for seed in ("1", "2", "3")}
    assert len(outputs) == 1
