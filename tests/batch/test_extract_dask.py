"""Extracts anonymised on a Dask cluster: the same rows and manifest as the local path."""

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
