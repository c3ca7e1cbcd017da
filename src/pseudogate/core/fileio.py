"""Atomic file output, and private folders and files.

A failure at any point leaves no partial output behind (the brief: bad input loses nothing).
Outputs are private by default (mode 0600): every output may hold tokens or quasi-identifiers.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from pseudogate.core.errors import translating_storage_full

__all__ = [
    "PRIVATE_DIR_MODE",
    "PRIVATE_FILE_MODE",
    "atomic_output",
    "atomic_write_bytes",
    "atomic_write_text",
    "make_private_dir",
    "make_private_file",
    "shared_entries",
]

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str], *, mode: int = PRIVATE_FILE_MODE) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success rename it over ``path``.

    A full disk becomes :class:`~pseudogate.core.errors.StorageFull` (the log names the folder).
    """
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    with translating_storage_full(folder):
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            os.chmod(tmp, mode)
            yield tmp
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


def atomic_write_bytes(
    path: str | os.PathLike[str], data: bytes, *, mode: int = PRIVATE_FILE_MODE
) -> None:
    with atomic_output(path, mode=mode) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(
    path: str | os.PathLike[str], text: str, *, mode: int = PRIVATE_FILE_MODE
) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), mode=mode)


def make_private_dir(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` and missing parents, each folder it creates exactly mode 0700.

    ``mkdir(mode=...)`` is filtered by the umask (a strict umask would leave 0500), so each new
    folder is chmod-ed; folders that already exist are left as they are.
    """
    target = Path(path)
    missing: list[Path] = []
    folder = target
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=PRIVATE_DIR_MODE)
        except FileExistsError:
            continue
        os.chmod(folder, PRIVATE_DIR_MODE)
    if not target.is_dir():
        raise NotADirectoryError(f"{target} is not a directory")
    return target


def make_private_file(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` if missing (empty) and set it to mode 0600; for files the caller owns."""
    target = Path(path)
    fd = os.open(target, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), PRIVATE_FILE_MODE)
    try:
        os.fchmod(fd, PRIVATE_FILE_MODE)
    finally:
        os.close(fd)
    return target


def shared_entries(root: str | os.PathLike[str]) -> list[tuple[Path, int]]:
    """``root`` and every folder and file under it that group or others may read or write.

    Symbolic links are not followed and their own (meaningless) mode is ignored.
    """
    found: list[tuple[Path, int]] = []
    top = Path(root)
    pending = [top]
    while pending:
        folder = pending.pop()
        mode = stat.S_IMODE(folder.lstat().st_mode)
        if mode & 0o077:
            found.append((folder, mode))
        with os.scandir(folder) as entries:
            for entry in entries:
                st = entry.stat(follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    pending.append(Path(entry.path))
                elif not stat.S_ISLNK(st.st_mode) and stat.S_IMODE(st.st_mode) & 0o077:
                    found.append((Path(entry.path), stat.S_IMODE(st.st_mode)))
    return sorted(found)
