"""Tokenise one column of a partitioned table, partition by partition, on any runner.

Each partition is read, tokenised (the one column pipeline, :mod:`pseudogate.core.columns`)
and written by the worker that runs it, into a private temporary folder next to the output;
the client only gathers row counts and the first row errors of each partition. Rows are
numbered from 1 across partitions (:mod:`pseudogate.batch.inputs`). When any value is invalid
nothing is published: the temporary folder is removed and the errors are raised exactly as
``pseudogate tokenise`` words them. Otherwise the folder is renamed into place (a folder of
Parquet partitions ``part-00000.parquet``, ...) or, for a ``.csv`` output, the partitions'
CSV rows are joined under one header into the output file.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pseudogate.batch.inputs import NOT_PLAIN, Inputs, Part, read_batches
from pseudogate.batch.outputs import join_csv_parts, open_private, part_name, temp_dir
from pseudogate.batch.runner import Runner
from pseudogate.core import csv_io
from pseudogate.core.columns import tokenise_column
from pseudogate.core.errors import InvalidInput, RowError, RowErrors
from pseudogate.core.normalise import Kind
from pseudogate.core.tokens import ShippedKey

__all__ = ["MAX_LISTED_ERRORS", "PartDone", "tokenise_parts"]

MAX_LISTED_ERRORS = 50


@dataclass(frozen=True, slots=True)
class PartDone:
    """What a worker reports for one partition: rows, the first errors, how many in all."""

    rows: int
    errors: tuple[tuple[int, str], ...]  # (0-based row in the partition, reason)
    n_errors: int
    problem: str | None = None  # NOT_PLAIN, or a column that is not text


def _text_column(batch: pa.RecordBatch, col: int) -> pa.Array | None:
    """The column as utf8, or None when it is not text."""
    array = batch.column(col)
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    if pa.types.is_string(array.type):
        return array
    if pa.types.is_large_string(array.type) or pa.types.is_string_view(array.type):
        return array.cast(pa.string())
    if pa.types.is_null(array.type):
        return pa.array([""] * len(array), type=pa.string())
    return None


def tokenise_part(job: tuple[int, Part], *, out_dir: str, columns: tuple[str, ...], col: int,
                  kind: Kind, key: ShippedKey, csv_out: bool, limit: int = MAX_LISTED_ERRORS
                  ) -> PartDone:
    """Tokenise column ``col`` of one partition into ``out_dir`` (runs on a worker).

    After the first invalid value nothing more is written (the client will not publish the
    folder) but every row is still checked, so the error count is exact.
    """
    index, part = job
    tokeniser = key.tokeniser()
    target = Path(out_dir) / part_name(index, csv_out=csv_out)
    errors: list[tuple[int, str]] = []
    n_errors = rows = 0
    writer: pq.ParquetWriter | None = None
    name = columns[col]
    with open(open_private(target), "wb") as sink:
        try:
            for batch in read_batches(part, columns=columns, whole=True):
                text = _text_column(batch, col)
                if text is None:
                    return PartDone(rows, (), 0, problem=f"type:{batch.schema.field(col).type}")
                done = tokenise_column(text, kind=kind, tokeniser=tokeniser)
                if done.errors:
                    n_errors += len(done.errors)
                    room = limit - len(errors)
                    errors.extend((rows + r, reason) for r, reason in done.errors[:room])
                elif not n_errors:
                    out = batch.set_column(col, pa.field(name, pa.string()), done.tokens)
                    if csv_out:
                        csv_io.write_rows(sink, _all_text(out))
                    else:
                        if writer is None:
                            writer = _parquet_writer(sink, out.schema, token_column=name)
                        writer.write_batch(out)
                rows += batch.num_rows
        except csv_io.NotPlain:
            return PartDone(rows, (), 0, problem=NOT_PLAIN)
        finally:
            if writer is not None:
                writer.close()
            elif not csv_out and not n_errors:  # no rows: an empty table, with its columns
                pq.write_table(_out_schema(part, columns, col).empty_table(), sink)
    return PartDone(rows, tuple(errors), n_errors)


def _parquet_writer(sink: Any, schema: pa.Schema, *, token_column: str) -> pq.ParquetWriter:
    """Tokens are random text: no dictionary, no compression and no min/max statistics for
    them (all cost CPU and save nothing: no reader prunes on a random token's range); no
    dictionary elsewhere either (identifier-like columns defeat it, at a high cost), snappy
    and statistics for the rest."""
    others = [n for n in schema.names if n != token_column]
    compression = {n: ("none" if n == token_column else "snappy") for n in schema.names}
    return pq.ParquetWriter(sink, schema, use_dictionary=False, compression=compression,
                            write_statistics=others or False)


def _out_schema(part: Part, columns: tuple[str, ...], col: int) -> pa.Schema:
    if part.csv:
        schema = pa.schema([(name, pa.string()) for name in columns])
    else:
        schema = pq.ParquetFile(part.path).schema_arrow
    return schema.set(col, pa.field(columns[col], pa.string()))


def _all_text(batch: pa.RecordBatch) -> pa.RecordBatch:
    """A batch whose columns are all utf8 without nulls (what ``csv_io.write_rows`` takes)."""
    arrays = []
    for i in range(batch.num_columns):
        text = _text_column(batch, i)
        if text is None:
            raise InvalidInput(f"column {batch.schema.names[i]!r} is not text: a .csv output "
                               "takes text columns only (write Parquet instead)")
        arrays.append(text.fill_null("") if text.null_count else text)
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)


def tokenise_parts(inputs: Inputs, output: Path, *, runner: Runner, column: str, kind: Kind,
                   key: ShippedKey, input_label: str) -> int:
    """Tokenise ``column`` of every partition; returns the number of data rows.

    Raises :class:`RowErrors` (rows numbered from 1 across partitions, after the header)
    when any value is invalid; nothing is then written.
    """
    csv_out = output.suffix == ".csv"
    if not csv_out and output.exists():
        raise InvalidInput(f"output {output} already exists: name a new folder")
    col = inputs.columns.index(column)
    tmp = temp_dir(output)
    try:
        done = runner.map(tokenise_part, list(enumerate(inputs.parts)), out_dir=str(tmp),
                          columns=inputs.columns, col=col, kind=kind, key=key, csv_out=csv_out)
        _raise_problems(done, inputs, column=column, input_label=input_label)
        total = sum(d.rows for d in done)
        if csv_out:
            os.replace(join_csv_parts(tmp, names=list(inputs.columns), parts=len(done)), output)
        else:
            os.rename(tmp, output)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return total


def _raise_problems(done: list[PartDone], inputs: Inputs, *, column: str,
                    input_label: str) -> None:
    for d, part in zip(done, inputs.parts, strict=True):
        if d.problem == NOT_PLAIN:
            raise InvalidInput(
                f"{part.path} is not a plain CSV file (a row with the wrong number of fields, a "
                "blank line, a carriage return inside a value, or text that is not UTF-8): "
                "tokenise it with --engine local, which reads it row by row and names the rows"
            )
        if d.problem is not None:
            raise InvalidInput(f"column {column!r} of {part.path} is not text "
                               f"({d.problem.removeprefix('type:')}): tokens are made of text")
    n_errors = sum(d.n_errors for d in done)
    if not n_errors:
        return
    errors: list[RowError] = []
    offset = 0
    for d in done:
        errors.extend(RowError(offset + r + 1, reason) for r, reason in d.errors)
        offset += d.rows
    errors = errors[:MAX_LISTED_ERRORS]
    raise RowErrors(
        errors,
        context=f"column {column!r} of {input_label} (data rows numbered from 1 after the "
        "header); no output written",
        limit=MAX_LISTED_ERRORS,
        total=n_errors,
    )
