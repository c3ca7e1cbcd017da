"""A full disk is a clear StorageFull (RESOURCE_EXHAUSTED) naming the path in the log, and
leaves nothing partial (issue 14 #6). SQLite's own SQLITE_FULL is produced for real with
``PRAGMA max_page_count``; ENOSPC from Parquet writes is injected."""

from __future__ import annotations

import contextlib
import errno
import logging
import sqlite3
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pseudogate.core.errors import ErrorCode, StorageFull, is_storage_full, translating_storage_full
from pseudogate.gateway import Store
from pseudogate.store.catalog import Catalog

from .helpers import files_under, gp_columns, ipc, people, submit


def _enospc(*args: object, **kwargs: object) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("stage", ["write_table", "close"])
def test_when_a_parquet_write_finds_no_space_then_storage_full_and_nothing_is_stored(
    store: Store, data_dir: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture, stage: str,
) -> None:
    monkeypatch.setattr(pq.ParquetWriter, stage, _enospc)
    with caplog.at_level(logging.ERROR), pytest.raises(StorageFull) as caught:
        submit(store, "gp_diagnoses", "gp", "gp-org", ipc(gp_columns(people(3))))
    monkeypatch.undo()
    assert caught.value.code is ErrorCode.RESOURCE_EXHAUSTED
    assert str(caught.value).startswith("storage full")
    assert str(data_dir) not in str(caught.value)  # the caller is not told where files live
    assert any(f"cannot write {data_dir / 'tmp'}" in r.getMessage() for r in caplog.records)
    assert files_under(data_dir) == ["catalog.sqlite3", "store.lock"]
    assert store.catalog.dataset_names() == []


def test_when_publishing_finds_no_space_then_the_version_is_not_recorded(
    store: Store, data_dir: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("os.replace", _enospc)
    with pytest.raises(StorageFull):
        submit(store, "gp_diagnoses", "gp", "gp-org", ipc(gp_columns(people(3))))
    monkeypatch.undo()
    assert store.catalog.dataset_names() == []
    assert files_under(data_dir) == ["catalog.sqlite3", "store.lock"]


@contextlib.contextmanager
def _full_catalog(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Every catalog connection may not grow the database file (real SQLITE_FULL)."""
    original = Catalog._connect

    def connect(self: Catalog) -> contextlib.closing[sqlite3.Connection]:
        closing = original(self)
        db = closing.thing
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        db.execute(f"PRAGMA max_page_count = {pages}")
        return closing

    monkeypatch.setattr(Catalog, "_connect", connect)
    yield
    monkeypatch.undo()


def test_when_the_catalog_is_full_then_an_opt_out_import_is_storage_full_and_changes_nothing(
    store: Store, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    numbers = [p["nhs_number"] for p in people(400)]
    with _full_catalog(monkeypatch), caplog.at_level(logging.ERROR), pytest.raises(StorageFull):
        store.import_optouts(numbers)
    assert store.latest_optout_snapshot() is None
    assert any(f"cannot write {store.catalog.path}" in r.getMessage() for r in caplog.records)
    assert not any(n in caplog.text for n in numbers)


def test_when_a_path_names_an_identifier_then_the_log_names_a_folder_above_it(
    caplog: pytest.LogCaptureFixture, tmp_path: Path,
) -> None:
    target = tmp_path / "datasets" / "ll112ab" / "1.parquet"
    with caplog.at_level(logging.ERROR), pytest.raises(StorageFull) as caught, \
            translating_storage_full(target):
        raise OSError(errno.EDQUOT, "Disk quota exceeded")
    assert caught.value.path == str(tmp_path / "datasets")
    assert "ll112ab" not in caplog.text


def test_when_another_os_error_happens_then_it_is_not_called_storage_full() -> None:
    assert not is_storage_full(OSError(errno.EACCES, "Permission denied"))
    assert not is_storage_full(sqlite3.OperationalError("database is locked"))
    assert is_storage_full(OSError("IOError: [Errno 28] No space left on device"))  # pyarrow's
    with pytest.raises(PermissionError), translating_storage_full("/x"):
        raise PermissionError(errno.EACCES, "Permission denied")


def test_when_an_atomic_output_finds_no_space_then_storage_full_and_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pseudogate.core.fileio import atomic_write_bytes

    monkeypatch.setattr("os.fsync", _enospc)
    with pytest.raises(StorageFull) as caught:
        atomic_write_bytes(tmp_path / "out.csv", b"a,b\n")
    monkeypatch.undo()
    assert caught.value.path == str(tmp_path)
    assert list(tmp_path.iterdir()) == []
