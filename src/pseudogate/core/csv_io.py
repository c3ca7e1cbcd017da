"""CSV through Arrow: a streaming reader of text cells and a writer that quotes like ``csv``.

Python's ``csv`` module defines what a CSV file means to the CLI (it is what the commands have
always used); Arrow reads and writes well-formed files many times faster. The two parse alike
except where Arrow cannot tell (a row whose fields are all empty may have been a blank line,
which ``csv`` reads as a row of no fields) or refuses the input (wrong field counts, bad UTF-8,
...). There :class:`NotPlain` is raised and the caller reads the file with ``csv`` instead, so
what a command does never depends on which reader ran; errors name rows, never values.
"""

from __future__ import annotations

import csv
import functools
import io
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

__all__ = [
    "BLOCK_BYTES",
    "NotPlain",
    "has_blank_row",
    "text_batches",
    "write_header",
    "write_rows",
]

#: Bytes of CSV text per record batch: memory is bounded by a few blocks, not by the file.
BLOCK_BYTES = 1 << 20


class NotPlain(Exception):
    """The Arrow path cannot vouch for this input: read it the old way (``csv``, or pandas in
    ``anonymise``). Carries no text from the file (Arrow's own messages quote rows)."""


def text_batches(
    path: Path,
    *,
    columns: Sequence[str],
    delimiter: str = ",",
    block_bytes: int = BLOCK_BYTES,
    skip_blank_lines: bool = False,
    allow_carriage_returns: bool = False,
) -> Iterator[pa.RecordBatch]:
    """Record batches of ``path`` (header ``columns``, as ``csv`` read it), every cell a string.

    No type inference: empty cells stay "", leading zeros stay. Blank lines come as all-empty
    rows (see :func:`has_blank_row`) unless skipped. Raises :class:`NotPlain` (whose message
    is the name of Arrow's exception) where Arrow refuses the file or reads a different header,
    and, unless allowed, where a value holds a carriage return: when a block ends between the
    CR and LF of a line break inside quotes, Arrow (26.0) drops the LF from the value.
    """
    try:
        reader = pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(block_size=block_bytes, encoding="utf8"),
            parse_options=pacsv.ParseOptions(
                delimiter=delimiter, newlines_in_values=True, ignore_empty_lines=skip_blank_lines
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={name: pa.string() for name in columns},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
        if reader.schema.names != list(columns):
            raise NotPlain("Arrow read a different header")
        for batch in reader:
            if not allow_carriage_returns and any(
                b"\r" in bytes(_text(column)) for column in batch.columns
            ):
                raise NotPlain("a value holds a carriage return")
            yield batch
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        raise NotPlain(type(exc).__name__) from None


def has_blank_row(batch: pa.RecordBatch) -> bool:
    """Whether some row has only empty fields: it may be a blank line, which ``csv`` reads as
    a row of no fields and Arrow as empty fields, so only ``csv`` can say which it was."""
    empty = None
    for column in batch.columns:
        is_empty = pc.equal(pc.binary_length(column), 0)
        empty = is_empty if empty is None else pc.and_(empty, is_empty)
    return empty is not None and pc.any(empty).as_py() is True


@functools.cache
def _quote_chars(delimiter: str) -> str:
    """The characters that make ``csv.writer`` quote a field, asked of ``csv`` itself.

    (Python 3.11 does not quote a lone carriage return when the line terminator is "\\n";
    later versions do. Asking keeps the bytes identical to ``csv`` on every version.)
    """
    quoted = ""
    for ch in dict.fromkeys((delimiter, '"', "\n", "\r")):
        out = io.StringIO()
        csv.writer(out, delimiter=delimiter, lineterminator="\n").writerow([f"a{ch}b", "c"])
        if out.getvalue().startswith('"'):
            quoted += ch
    return quoted


def _text(array: pa.Array) -> memoryview:
    """The UTF-8 bytes of all the values of a utf8 array, back to back (no copy)."""
    offsets = np.frombuffer(
        array.buffers()[1], dtype=np.int32, count=len(array) + 1, offset=4 * array.offset
    )
    return memoryview(array.buffers()[2])[offsets[0] : offsets[-1]]


def _quoted(column: pa.Array, delimiter: str, *, alone: bool) -> pa.Array:
    """``column`` as ``csv.writer`` (QUOTE_MINIMAL) writes it; ``alone`` if it is the only
    column (then an empty field is written as "", or the row would be a blank line)."""
    chars = _quote_chars(delimiter)
    text = bytes(_text(column))
    if not any(ch.encode("utf-8") in text for ch in chars) and (  # memchr: the common case
        not alone or pc.min(pc.binary_length(column)).as_py() != 0
    ):
        return column
    needs = pc.match_substring_regex(column, "[" + re.escape(chars) + "]")
    if alone:
        needs = pc.or_(needs, pc.equal(pc.binary_length(column), 0))
    chosen = pc.filter(column, needs)
    quoted = pc.binary_join_element_wise('"', pc.replace_substring(chosen, '"', '""'), '"', "")
    return pc.replace_with_mask(column, needs, quoted)


def write_header(sink: BinaryIO, names: Sequence[str], *, delimiter: str = ",") -> None:
    """Write the header row to ``sink`` through ``csv.writer`` itself (one row, any names)."""
    head = io.StringIO()
    csv.writer(head, delimiter=delimiter, lineterminator="\n").writerow(names)
    sink.write(head.getvalue().encode("utf-8"))


def write_rows(sink: BinaryIO, batch: pa.RecordBatch, *, delimiter: str = ",") -> None:
    """Write the rows of ``batch`` (string columns, no nulls) to ``sink`` as UTF-8, byte for
    byte as ``csv.writer(f, delimiter=delimiter, lineterminator="\\n").writerows`` would."""
    if batch.num_rows == 0:
        return
    alone = batch.num_columns == 1
    parts: list[pa.Array | str] = []
    for column in batch.columns:
        parts += [_quoted(column, delimiter, alone=alone), delimiter]
    parts[-1] = "\n"
    sink.write(_text(pc.binary_join_element_wise(*parts, "")))
