"""Where partitioned jobs write: a private temporary folder beside the output, published at the
end (renamed into place, or its CSV pieces joined under one header) so that a failed job leaves
nothing behind.
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path

from pseudogate.core import csv_io
from pseudogate.core.fileio import PRIVATE_FILE_MODE

__all__ = ["join_csv_parts", "open_private", "part_name", "temp_dir"]


def open_private(path: Path) -> int:
    """A new file only its owner can read (workers may run under another umask)."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)


def temp_dir(output: Path) -> Path:
    """A new private folder beside ``output``."""
    folder = output.parent if str(output.parent) else Path(".")
    tmp = folder / f".{output.name}.{secrets.token_hex(4)}.tmp"
    tmp.mkdir(mode=0o700)
    return tmp


def part_name(index: int, *, csv_out: bool) -> str:
    return f"part-{index:05d}.{'csv' if csv_out else 'parquet'}"


def join_csv_parts(tmp: Path, *, names: list[str], parts: int, delimiter: str = ",") -> Path:
    """The CSV pieces of ``tmp`` (rows only) joined under one header, in ``tmp``, synced."""
    joined = tmp / "joined.csv"
    with open(open_private(joined), "wb") as sink:
        csv_io.write_header(sink, names, delimiter=delimiter)
        for i in range(parts):
            with open(tmp / part_name(i, csv_out=True), "rb") as part:
                shutil.copyfileobj(part, sink, 1 << 20)
        sink.flush()
        os.fsync(sink.fileno())
    return joined
