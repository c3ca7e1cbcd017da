"""Dataset version files: one Parquet file per committed version.

Its columns are UTF-8 strings (tokens and kept values), and, for a submission with identity
fields, one binary column of sealed linkage encodings last.

Layout inside the data directory::

    datasets/<name>/<version>.parquet   committed versions (named in the catalog)
    tmp/submission-*.parquet.tmp        submissions being written (tokens only)
    quarantine/<UTC time>/<path>        files found at start that the catalog does not list

A version file appears under ``datasets/`` only by ``os.replace`` from ``tmp/`` at commit, so a
reader never sees half a file. At start only the store's own staging files are removed; any
other file the catalog does not list (a catalog restored from an older backup, a file put there
by hand) is moved to the quarantine, never deleted: it may be the only copy of a dataset.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pseudogate.core.errors import FailedPrecondition
from pseudogate.core.fileio import PRIVATE_FILE_MODE, make_private_dir

__all__ = ["QUARANTINE_DIR", "DatasetFiles", "StartupSweep"]

QUARANTINE_DIR = "quarantine"
#: The only files the store deletes at start: its own staging files (see new_temp_path).
_STAGING_RE = re.compile(r"submission-[0-9a-f]{16}\.parquet\.tmp")


@dataclass(frozen=True, slots=True)
class StartupSweep:
    """What opening the store did to files the catalog does not list."""

    staging_removed: int = 0
    quarantined: tuple[str, ...] = ()  # paths relative to the data directory, as found
    quarantine_dir: Path | None = None

    def describe(self) -> str:
        """The loud start-up message (paths hold dataset names and versions, no identifier)."""
        return (
            f"moved {len(self.quarantined)} file(s) that the catalog does not list to "
            f"{self.quarantine_dir} (nothing was deleted): "
            f"{_first(self.quarantined)}. A catalog restored from an older backup, or files "
            "put there by hand; see 'Quarantine' in docs/operations.md"
        )


class DatasetFiles:
    """Paths and I/O of dataset version files under one data directory."""

    def __init__(self, data_dir: Path) -> None:
        self.root = data_dir
        self.tmp_dir = data_dir / "tmp"
        self.datasets_dir = data_dir / "datasets"
        self.quarantine_root = data_dir / QUARANTINE_DIR
        for folder in (self.tmp_dir, self.datasets_dir):
            make_private_dir(folder)

    def relative_version_path(self, dataset: str, version: int) -> str:
        return f"datasets/{dataset}/{version}.parquet"

    def path(self, relative: str) -> Path:
        return self.root / relative

    def new_temp_path(self) -> Path:
        return self.tmp_dir / f"submission-{secrets.token_hex(8)}.parquet.tmp"

    def writer(
        self,
        path: Path,
        schema: pa.Schema,
        *,
        token_columns: Sequence[str] = (),
        sealed_columns: Sequence[str] = (),
    ) -> pq.ParquetWriter:
        """A Parquet writer for a submission's temporary file.

        Tokens are random-looking: neither a dictionary nor compression gains anything on them,
        so they are stored plain; other columns get a dictionary and snappy. Sealed columns
        (the linkage encodings: one AES-GCM blob per row, unique by their random nonces) are
        stored plain too, and without min/max statistics: the file holds each blob once and
        nothing else derived from the values they seal.
        """
        tokens = set(token_columns)
        sealed = set(sealed_columns)
        plain = tokens | sealed
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
        os.fchmod(fd, PRIVATE_FILE_MODE)  # private whatever the umask; the writer truncates it
        os.close(fd)
        return pq.ParquetWriter(
            path,
            schema,
            compression={n: ("none" if n in plain else "snappy") for n in schema.names},
            use_dictionary=[n for n in schema.names if n not in plain],
            write_statistics=[n for n in schema.names if n not in sealed],
        )

    def publish(self, temp: Path, relative: str) -> Path:
        """Move a finished temporary file to its version path (atomic rename, then fsync)."""
        target = self.path(relative)
        make_private_dir(target.parent)
        with open(temp, "rb") as f:
            os.fchmod(f.fileno(), PRIVATE_FILE_MODE)
            os.fsync(f.fileno())
        os.replace(temp, target)
        _fsync_dir(target.parent)
        return target

    def read(self, relative: str, *, columns: Sequence[str] | None = None) -> pa.Table:
        return pq.read_table(self.path(relative), columns=list(columns) if columns else None)

    def dataset_file_count(self) -> int:
        """How many files (of any kind but folders) there are under ``datasets/``."""
        return sum(1 for _ in _non_folders(self.datasets_dir))

    def missing(self, known: Iterable[str]) -> list[str]:
        """The catalog's version files that are not on disk."""
        return sorted(k for k in known if not os.path.lexists(self.path(k)))

    def sweep(self, known: Iterable[str], *, now: datetime) -> StartupSweep:
        """Remove our staging files; move every other file the catalog does not list aside.

        ``known`` are the catalog's version files. Unknown entries of ``tmp/`` and files under
        ``datasets/`` go to ``quarantine/<now>/<their relative path>`` by ``os.replace``, in a
        folder created for this sweep, so nothing is overwritten and a version number the
        catalog will assign again never meets an old file.
        """
        keep = {os.path.normpath(k) for k in known}
        stray: list[Path] = []
        removed = 0
        for entry in sorted(self.tmp_dir.iterdir()):
            if _STAGING_RE.fullmatch(entry.name) and entry.is_file() and not entry.is_symlink():
                entry.unlink()
                removed += 1
            else:
                stray.append(entry)
        for entry in sorted(_non_folders(self.datasets_dir)):
            if os.path.normpath(entry.relative_to(self.root)) not in keep:
                stray.append(entry)
        if not stray:
            return StartupSweep(staging_removed=removed)
        folder = self._new_quarantine_folder(now)
        moved: list[str] = []
        for entry in stray:
            relative = entry.relative_to(self.root)
            target = folder / relative
            try:
                make_private_dir(target.parent)
                if os.path.lexists(target):
                    raise FileExistsError(target)
                os.replace(entry, target)
            except OSError as exc:
                raise FailedPrecondition(
                    f"cannot move {relative} into the quarantine {folder}: "
                    f"{exc.strerror or type(exc).__name__}; {len(moved)} file(s) already moved "
                    "there, nothing was deleted, the store does not open"
                ) from None
            moved.append(relative.as_posix())
        _fsync_dir(folder)
        return StartupSweep(
            staging_removed=removed, quarantined=tuple(moved), quarantine_dir=folder
        )

    def _new_quarantine_folder(self, now: datetime) -> Path:
        make_private_dir(self.quarantine_root)
        stamp = now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
        for n in range(1000):
            folder = self.quarantine_root / (stamp if n == 0 else f"{stamp}-{n}")
            try:
                folder.mkdir(mode=0o700)
            except FileExistsError:
                continue
            os.chmod(folder, 0o700)
            return folder
        raise FailedPrecondition(
            f"cannot create a new quarantine folder under {self.quarantine_root}"
        )


def _non_folders(folder: Path) -> Iterator[Path]:
    """Every entry under ``folder`` that is not a real folder (files, links, others)."""
    with os.scandir(folder) as entries:
        found = list(entries)
    for entry in found:
        if entry.is_dir(follow_symlinks=False):
            yield from _non_folders(Path(entry.path))
        else:
            yield Path(entry.path)


def _first(paths: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(paths[:limit])
    return shown + (f" and {len(paths) - limit} more" if len(paths) > limit else "")


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
