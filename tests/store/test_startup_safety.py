"""Opening a store: quarantine never overwrites, key checks cover every record, nothing silent."""

from __future__ import annotations

import base64
import hashlib
import logging
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pseudogate.core.errors import FailedPrecondition
from pseudogate.core.keyring import Keyring
from pseudogate.core.policy import Policy
from pseudogate.gateway import Store
from pseudogate.store.catalog import ProjectRow
from pseudogate.store.datasets import DatasetFiles

from .helpers import Clock, files_under, gp_columns, ipc, keyring_document, people, submit

MOMENT = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)


def _other_keyring() -> Keyring:
    doc = keyring_document()
    for n, entry in enumerate(doc["keys"]):  # type: ignore[union-attr]
        entry["id"] = entry["id"].replace("1", "2")  # lk2, pk2, sk2
        entry["material"] = base64.b64encode(bytes([n + 1]) * 32).decode()
    return Keyring.from_document(doc)


def test_when_the_same_moment_quarantines_twice_then_the_second_gets_its_own_folder(
    tmp_path: Path,
) -> None:
    files = DatasetFiles(tmp_path)
    stray = tmp_path / "datasets" / "gp" / "7.parquet"
    stray.parent.mkdir()
    stray.write_bytes(b"first")
    first = files.sweep(set(), now=MOMENT)
    stray.write_bytes(b"second")
    second = files.sweep(set(), now=MOMENT)

    assert first.quarantine_dir == tmp_path / "quarantine" / "20250601T120000Z"
    assert second.quarantine_dir == tmp_path / "quarantine" / "20250601T120000Z-1"
    assert first.quarantined == second.quarantined == ("datasets/gp/7.parquet",)
    assert (first.quarantine_dir / "datasets/gp/7.parquet").read_bytes() == b"first"
    assert (second.quarantine_dir / "datasets/gp/7.parquet").read_bytes() == b"second"


def test_when_a_symlink_is_found_under_datasets_then_the_link_is_moved_and_its_target_untouched(
    tmp_path: Path,
) -> None:
    outside = tmp_path / "elsewhere.parquet"
    outside.write_bytes(b"not ours")
    data = tmp_path / "data"
    files = DatasetFiles(data)
    (data / "datasets" / "gp").mkdir()
    (data / "datasets" / "gp" / "1.parquet").symlink_to(outside)

    sweep = files.sweep(set(), now=MOMENT)

    moved = sweep.quarantine_dir / "datasets/gp/1.parquet"  # type: ignore[operator]
    assert moved.is_symlink() and os.readlink(moved) == str(outside)
    assert outside.read_bytes() == b"not ours"


def test_when_only_staging_files_are_found_then_they_are_removed_and_no_quarantine_is_made(
    tmp_path: Path,
) -> None:
    files = DatasetFiles(tmp_path)
    (tmp_path / "tmp" / "submission-00112233aabbccdd.parquet.tmp").write_bytes(b"x")

    sweep = files.sweep(set(), now=MOMENT)

    assert sweep.staging_removed == 1 and sweep.quarantined == ()
    assert files_under(tmp_path) == [] and not (tmp_path / "quarantine").exists()


def test_when_a_name_only_looks_like_staging_then_it_is_quarantined_not_removed(
    tmp_path: Path,
) -> None:
    files = DatasetFiles(tmp_path)
    for name in ("submission-XYZ.parquet.tmp", "submission-00112233aabbccdd.parquet"):
        (tmp_path / "tmp" / name).write_bytes(b"x")

    sweep = files.sweep(set(), now=MOMENT)

    assert sweep.staging_removed == 0
    assert sorted(sweep.quarantined) == [
        "tmp/submission-00112233aabbccdd.parquet",
        "tmp/submission-XYZ.parquet.tmp",
    ]


def test_when_the_keyring_lacks_every_key_the_catalog_uses_then_open_lists_each_with_its_uses(
    data_dir: Path, store: Store, policies: dict[str, Policy], clock: Clock
) -> None:
    submit(store, "gp_diagnoses", "gp", "gp-org", ipc(gp_columns(people(3))))
    store.import_optouts([p["nhs_number"] for p in people(2)])
    with store.catalog.transaction() as db:  # a project row as create_project records it
        store.catalog.insert_project(
            db,
            ProjectRow(
                "p1",
                "uni",
                ("gp_diagnoses",),
                "person",
                "version: 1\n",
                {},
                "fp",
                "pk1",
                "2030-01-01",
                "2025-06-01T12:00:00Z",
            ),
        )
    store.close()
    before = {
        p: hashlib.sha256((data_dir / p).read_bytes()).hexdigest() for p in files_under(data_dir)
    }

    with pytest.raises(FailedPrecondition) as refused:
        Store.open(data_dir, keyring=_other_keyring(), policies=policies, clock=clock)

    message = str(refused.value)
    assert "the catalog uses 2 key(s) missing from the keyring: " in message
    assert "lk1 (1 dataset version(s), 1 opt-out snapshot(s)); pk1 (1 project(s))" in message
    assert "lk2" not in message and "sk1" not in message
    after = {
        p: hashlib.sha256((data_dir / p).read_bytes()).hexdigest() for p in files_under(data_dir)
    }
    assert after == before
    Store.open(data_dir, keyring=store.keyring, policies=policies, clock=clock).close()


def test_when_a_catalogued_version_file_is_missing_then_opening_warns_naming_it(
    data_dir: Path,
    store: Store,
    keyring: Keyring,
    policies: dict[str, Policy],
    clock: Clock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    submit(store, "gp_diagnoses", "gp", "gp-org", ipc(gp_columns(people(3))))
    store.close()
    (data_dir / "datasets" / "gp_diagnoses" / "1.parquet").unlink()

    with caplog.at_level(logging.WARNING, logger="pseudogate.store"):
        Store.open(data_dir, keyring=keyring, policies=policies, clock=clock).close()

    (record,) = caplog.records
    assert (
        "1 version file(s) that are not on disk (datasets/gp_diagnoses/1.parquet)"
        in record.getMessage()
    )


def test_when_dataset_files_have_no_catalog_then_open_refuses_without_creating_one(
    data_dir: Path, store: Store, keyring: Keyring, policies: dict[str, Policy], clock: Clock
) -> None:
    submit(store, "gp_diagnoses", "gp", "gp-org", ipc(gp_columns(people(3))))
    store.close()
    (data_dir / "catalog.sqlite3").unlink()

    with pytest.raises(FailedPrecondition, match="1 dataset file"):
        Store.open(data_dir, keyring=keyring, policies=policies, clock=clock)

    assert files_under(data_dir) == ["datasets/gp_diagnoses/1.parquet", "store.lock"]


def test_when_a_file_cannot_be_moved_to_the_quarantine_then_open_refuses_and_deletes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = DatasetFiles(tmp_path)
    (tmp_path / "datasets" / "gp").mkdir()
    for name in ("1.parquet", "2.parquet"):
        (tmp_path / "datasets" / "gp" / name).write_bytes(name.encode())
    real_replace = os.replace

    def replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        if str(src).endswith("2.parquet"):
            raise OSError(18, "Invalid cross-device link")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(FailedPrecondition) as refused:
        files.sweep(set(), now=MOMENT)

    assert "cannot move datasets/gp/2.parquet" in str(refused.value)
    assert "1 file(s) already moved there, nothing was deleted" in str(refused.value)
    assert files_under(tmp_path) == [
        "datasets/gp/2.parquet",
        "quarantine/20250601T120000Z/datasets/gp/1.parquet",
    ]
