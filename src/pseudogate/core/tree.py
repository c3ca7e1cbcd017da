"""ARX's hierarchy CSV format: one row per original value, column j its level-j generalisation.

Kept apart from the other hierarchies because the policy validates tree files when it is
loaded (``pseudogate policy check`` must refuse a malformed file before any data is read).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from pseudogate.core.errors import ConfigurationError

__all__ = ["MAX_TREE_BYTES", "MAX_TREE_LEVELS", "MAX_TREE_ROWS", "TreeTable", "parse_tree_file"]

#: Bounds on a hierarchy file: far above real code lists (ICD-10 has about 70,000 codes), low
#: enough that a wrong or hostile file is refused before it exhausts memory.
MAX_TREE_BYTES = 64 * 1024 * 1024
MAX_TREE_ROWS = 1_000_000
MAX_TREE_LEVELS = 64


@dataclass(frozen=True)
class TreeTable:
    """The rows of a tree file (repeated rows kept: each counts as a leaf, as in ARX)."""

    rows: tuple[tuple[str, ...], ...]

    @property
    def height(self) -> int:
        """Number of levels (columns)."""
        return len(self.rows[0])


def parse_tree_file(data: bytes, *, source: str) -> TreeTable:
    """Parse and validate: same width everywhere, each value has exactly one parent."""
    if len(data) > MAX_TREE_BYTES:
        raise ConfigurationError(
            f"hierarchy {source}: {len(data)} bytes; the limit is {MAX_TREE_BYTES} bytes"
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ConfigurationError(f"hierarchy {source}: not UTF-8 text") from None
    rows: list[tuple[str, ...]] = []
    lines: list[int] = []
    reader = csv.reader(io.StringIO(text), delimiter=";", quotechar='"', strict=True)
    try:
        for record in reader:
            if not record or record == [""]:
                continue
            if len(record) > MAX_TREE_LEVELS:
                raise ConfigurationError(f"hierarchy {source} line {reader.line_num}: more than "
                                         f"{MAX_TREE_LEVELS} levels")
            if len(rows) >= MAX_TREE_ROWS:
                raise ConfigurationError(f"hierarchy {source}: more than {MAX_TREE_ROWS} rows")
            rows.append(tuple(record))
            lines.append(reader.line_num)
    except csv.Error:
        raise ConfigurationError(f"hierarchy {source} line {reader.line_num}: malformed CSV") \
            from None
    if not rows:
        raise ConfigurationError(f"hierarchy {source}: no rows")
    width = len(rows[0])
    parents: list[dict[str, str]] = [{} for _ in range(width)]
    for row, line in zip(rows, lines, strict=True):
        if len(row) != width:
            raise ConfigurationError(
                f"hierarchy {source} line {line}: {len(row)} columns, expected {width} "
                "(every row must have the same number of levels)"
            )
        if any(cell == "" for cell in row):
            raise ConfigurationError(f"hierarchy {source} line {line}: empty cell")
        for level in range(width - 1):
            known = parents[level].setdefault(row[level], row[level + 1])
            if known != row[level + 1]:
                raise ConfigurationError(
                    f"hierarchy {source} line {line}: a level-{level} value has two different "
                    f"parents at level {level + 1} (each value must have exactly one parent)"
                )
    return TreeTable(rows=tuple(rows))
