"""Dataset version files: one Parquet file of UTF-8 string columns per committed version.

Layout inside the data directory::

    datasets/<name>/<version>.parquet   committed versions (named in the catalog)
    tmp/                                submissions being written (tokens only); emptied at start

A version file appears under ``datasets/`` only by ``os.replace`` from ``tmp/`` at commit, so a
reader never sees half a file, and anything in ``tmp/`` or not named by the catalog is debris
from a crash, removed when the store opens.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["DatasetFiles"]


class DatasetFiles:
    """Paths and I/O of dataset version files under one data directory."""

    def __init__(self, data_dir: Path) -> None:
        self.root = data_dir
        self.tmp_dir = data_dir / "tmp"
        self.datasets_dir = data_dir / "datasets"
        for folder in (self.tmp_dir, self.datasets_dir):
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)

    def relative_version_path(self, dataset: str, version: int) -> str:
        return f"datasets/{dataset}/{version}.parquet"

    def path(self, relative: str) -> Path:
        return self.root / relative

    def new_temp_path(self) -> Path:
        return self.tmp_dir / f"submission-{secrets.token_hex(8)}.parquet.tmp"

    def writer(
        self, path: Path, schema: pa.Schema, *, token_columns: Sequence[str] = ()
    ) -> pq.ParquetWriter:
        """A Parquet writer for a submission's temporary file.

        Tokens are random-looking: neither a dictionary nor compression gains anything on them,
        so they are stored plain; other columns get a dictionary and snappy.
        """
        tokens = set(token_columns)
        return pq.ParquetWriter(
            path,
            schema,
            compression={n: ("none" if n in tokens else "snappy") for n in schema.names},
            use_dictionary=[n for n in schema.names if n not in tokens],
        )

    def publish(self, temp: Path, relative: str) -> Path:
        """Move a finished temporary file to its version path (atomic rename, then fsync)."""
        target = self.path(relative)
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with open(temp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(temp, target)
        _fsync_dir(target.parent)
        return target

    def read(self, relative: str, *, columns: Sequence[str] | None = None) -> pa.Table:
        return pq.read_table(self.path(relative), columns=list(columns) if columns else None)

    def remove_debris(self, known: Iterable[str]) -> list[Path]:
        """Delete temporary files and version files the catalog does not name."""
        keep = {self.path(k).resolve() for k in known}
        removed: list[Path] = []
        for p in self.tmp_dir.iterdir():
            if p.is_file():
                p.unlink()
                removed.append(p)
        for p in self.datasets_dir.rglob("*"):
            if p.is_file() and p.resolve() not in keep:
                p.unlink()
                removed.append(p)
        return removed


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
