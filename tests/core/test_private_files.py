"""Private by default on disk: folders 0700 and files 0600 whatever the umask."""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from pseudogate.cli import UMASK, main
from pseudogate.core.fileio import (
    atomic_write_text,
    make_private_dir,
    make_private_file,
    shared_entries,
)


@contextlib.contextmanager
def umask(mask: int) -> Iterator[None]:
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.mark.parametrize("mask", [0o000, 0o022, 0o277])
def test_when_folders_are_made_under_any_umask_then_each_new_one_is_exactly_0700(
    tmp_path: Path, mask: int
) -> None:
    existing = tmp_path / "existing"
    existing.mkdir(mode=0o755)
    existing.chmod(0o755)
    with umask(mask):
        make_private_dir(existing / "a" / "b")
    assert mode(existing / "a") == mode(existing / "a" / "b") == 0o700
    assert mode(existing) == 0o755, "folders that already exist are left alone"


def test_when_a_private_file_is_made_then_a_new_one_is_0600_and_an_old_one_is_tightened(
    tmp_path: Path,
) -> None:
    old = tmp_path / "old"
    old.write_bytes(b"kept")
    old.chmod(0o644)
    with umask(0o000):
        make_private_file(old)
        make_private_file(tmp_path / "new")
    assert mode(old) == mode(tmp_path / "new") == 0o600
    assert old.read_bytes() == b"kept"


def test_when_an_atomic_output_is_written_without_a_mode_then_it_is_0600(tmp_path: Path) -> None:
    with umask(0o000):
        atomic_write_text(tmp_path / "out.csv", "token\n")
    assert mode(tmp_path / "out.csv") == 0o600


def test_when_a_tree_has_shared_entries_then_each_is_listed_and_symlinks_are_ignored(
    tmp_path: Path,
) -> None:
    root = make_private_dir(tmp_path / "root")
    (root / "sub").mkdir(mode=0o700)
    (root / "sub").chmod(0o750)
    (root / "sub" / "f").write_bytes(b"")
    (root / "sub" / "f").chmod(0o604)
    (root / "ok").write_bytes(b"")
    (root / "ok").chmod(0o600)
    (root / "link").symlink_to(root / "ok")
    assert shared_entries(root) == [(root / "sub", 0o750), (root / "sub" / "f", 0o604)]


def test_when_a_cli_command_runs_then_it_runs_under_umask_077_and_restores_the_callers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pseudogate.cli.serve

    seen: list[int] = []

    def handler(args: object) -> int:
        current = os.umask(0o077)
        os.umask(current)
        seen.append(current)
        return 0

    monkeypatch.setattr(pseudogate.cli.serve, "run", handler)
    with umask(0o022):
        assert main(["serve", "--insecure", "--data-dir", "d", "--policies", "p"]) == 0
        assert os.umask(0o022) == 0o022, "restored for an in-process caller"
    assert seen == [UMASK] == [0o077]
