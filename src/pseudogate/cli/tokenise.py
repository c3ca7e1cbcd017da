"""``pseudogate tokenise``: replace one column with tokens, in-process or on a Dask cluster.

The input is streamed in chunks into a temporary output. Every row is checked; if any value is
invalid the command lists row numbers and reason codes (never values), exits with status 2 and
leaves no output behind (the temporary file or folder is removed).

``--engine local`` (the default) reads a CSV file as it always has; a Parquet input (a
``.parquet`` file, a folder or a glob of them) is tokenised partition by partition in this
process. ``--engine dask`` does the same partition work on the workers of a Dask cluster
(``--scheduler``, or a ``LocalCluster`` on this machine): a CSV or Parquet input, written as a
folder of Parquet partitions, or as one CSV file when the output name ends ``.csv``.
"""

from __future__ import annotations

import argparse
import csv
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pseudogate.cli._common import EXAMPLE_KEYS_WARNING, Progress, fail, warn
from pseudogate.cli._engine import (
    Engine,
    add_engine_arguments,
    check_engine_arguments,
    is_parquet_input,
    runner_for,
)
from pseudogate.core import csv_io
from pseudogate.core.columns import tokenise_column, tokenise_list
from pseudogate.core.errors import RowError, RowErrors
from pseudogate.core.fileio import atomic_output
from pseudogate.core.keyring import Keyring
from pseudogate.core.names import DOMAIN_PATTERN, DOMAIN_RE
from pseudogate.core.normalise import Kind
from pseudogate.core.tokenisation import DEFAULT_DOMAINS
from pseudogate.core.tokens import Tokeniser

__all__ = ["register", "tokenise_csv"]

log = logging.getLogger(__name__)

CHUNK_ROWS = 65_536
MAX_LISTED_ERRORS = 50
WRONG_FIELD_COUNT = "wrong_field_count"  # a row whose number of fields differs from the header


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "tokenise",
        help="replace a CSV column with tokens (in-process)",
        description=__doc__,
    )
    p.add_argument("--keyring", type=Path, required=True, help="keyring file")
    p.add_argument(
        "--domain",
        required=True,
        help="token domain: values link across files only within one domain",
    )
    p.add_argument(
        "--kind",
        choices=[k.value for k in Kind],
        help="identifier kind (how values are normalised); "
        "defaults to the domain's kind for the built-in domains",
    )
    p.add_argument("--column", required=True, help="header name of the column to tokenise")
    p.add_argument("--input", type=Path, required=True,
                   help="CSV file with a header row, or a Parquet file, folder or glob")
    p.add_argument("--output", type=Path, required=True,
                   help="CSV file to write (a name ending .csv), else a folder of Parquet "
                   "partitions (Parquet inputs and --engine dask)")
    add_engine_arguments(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    check_engine_arguments(args)
    if not DOMAIN_RE.fullmatch(args.domain):  # the server's rule, so the domain can be served too
        fail(f"domain {args.domain!r} must match {DOMAIN_PATTERN}")
    if args.kind is None:
        if args.domain not in DEFAULT_DOMAINS:
            fail(f"--kind is required for domain {args.domain!r} (not a built-in domain)")
        kind = DEFAULT_DOMAINS[args.domain]
    else:
        kind = Kind(args.kind)
    ring = Keyring.load(args.keyring)
    if ring.is_example:
        warn(EXAMPLE_KEYS_WARNING)
    if Engine(args.engine) is Engine.DASK or is_parquet_input(args.input):
        return _run_batch(args, ring=ring, kind=kind)
    tokeniser = ring.linkage_tokeniser(args.domain)
    rows = tokenise_csv(
        args.input,
        args.output,
        column=args.column,
        kind=kind,
        tokeniser=tokeniser,
        show_progress=sys.stderr.isatty(),
    )
    log.info(
        "tokenised %d rows of column %r (kind %s, domain %s, key %s) into %s",
        rows,
        args.column,
        kind.value,
        args.domain,
        tokeniser.key_id,
        args.output,
    )
    print(f"{rows:,} rows tokenised with key {tokeniser.key_id}; wrote {args.output}")
    return 0


def _run_batch(args: argparse.Namespace, *, ring: Keyring, kind: Kind) -> int:
    """Partition by partition, in this process or on a Dask cluster (only the derived key of
    the one domain goes to the workers)."""
    from pseudogate.batch.inputs import find_inputs
    from pseudogate.batch.tokenise import tokenise_parts

    out_folder = args.output.parent if str(args.output.parent) else Path(".")
    if not out_folder.is_dir():
        fail(f"output folder {out_folder} does not exist")
    inputs = find_inputs(args.input)
    if inputs.parts[0].csv:
        with open(args.input, newline="", encoding="utf-8-sig") as src:
            _read_header(csv.reader(src), input_path=args.input, column=args.column)
    elif args.column not in inputs.columns:
        fail(f"column {args.column!r} not found in {args.input}")
    key = ring.linkage_key_to_ship(args.domain)
    with runner_for(args) as runner:
        rows = tokenise_parts(inputs, args.output, runner=runner, column=args.column, kind=kind,
                              key=key, input_label=str(args.input))
    log.info("tokenised %d rows of column %r (kind %s, domain %s, key %s, engine %s) into %s",
             rows, args.column, kind.value, args.domain, key.key_id, args.engine, args.output)
    print(f"{rows:,} rows tokenised with key {key.key_id}; wrote {args.output}")
    return 0


def _count_lines(path: Path) -> int:
    """Roughly the number of data rows (for the progress bar only)."""
    n = 0
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            n += block.count(b"\n")
    return max(n - 1, 0)


def _chunks(reader: Iterator[list[str]], size: int) -> Iterator[list[list[str]]]:
    chunk: list[list[str]] = []
    for row in reader:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def tokenise_csv(
    input_path: Path,
    output_path: Path,
    *,
    column: str,
    kind: Kind,
    tokeniser: Tokeniser,
    show_progress: bool = False,
    chunk_rows: int = CHUNK_ROWS,
    block_bytes: int = csv_io.BLOCK_BYTES,
) -> int:
    """Tokenise ``column`` of a CSV file; returns the number of data rows.

    Raises :class:`RowErrors` (rows numbered from 1 after the header) when any value is
    invalid; the output file is then not created.

    Arrow reads and writes the file in blocks of ``block_bytes``; a file it cannot vouch for
    (any invalid value or row, see :mod:`pseudogate.core.csv_io`) is read again with the ``csv``
    module in chunks of ``chunk_rows``, which finds and reports every error exactly as before.
    """
    if not input_path.is_file():
        fail(f"input file {input_path} does not exist")
    if not output_path.parent.is_dir():
        fail(f"output folder {output_path.parent} does not exist")
    total = _count_lines(input_path) if show_progress else None
    with open(input_path, newline="", encoding="utf-8-sig") as src:
        header, col = _read_header(csv.reader(src), input_path=input_path, column=column)
    try:
        with Progress("tokenising", total) as progress:
            return _tokenise_arrow(
                input_path, output_path, header=header, col=col, kind=kind, tokeniser=tokeniser,
                progress=progress, block_bytes=block_bytes,
            )
    except csv_io.NotPlain:
        pass
    with Progress("tokenising", total) as progress:
        return _tokenise_python(
            input_path, output_path, column=column, kind=kind, tokeniser=tokeniser,
            progress=progress, chunk_rows=chunk_rows,
        )


def _read_header(reader: Iterator[list[str]], *, input_path: Path, column: str) -> tuple[list[str], int]:
    """The header row and the index of ``column`` in it; refuses an unusable header."""
    try:
        header = next(reader)
    except StopIteration:
        fail(f"{input_path} is empty: a header row is expected")
    except (csv.Error, UnicodeDecodeError) as exc:
        fail(f"{input_path} is not a readable CSV file: {type(exc).__name__}")
    if column not in header:
        # A file without a header row has data there, and a name looks like any column name:
        # the header's cells are not shown, only how many there are.
        fail(
            f"column {column!r} not found in {input_path}: its first row has {len(header)} "
            "columns, none of them named so (their names are not shown: a file without a "
            "header row would have data there)"
        )
    if header.count(column) > 1:
        fail(f"column {column!r} appears {header.count(column)} times in {input_path}")
    return header, header.index(column)


def _tokenise_arrow(
    input_path: Path,
    output_path: Path,
    *,
    header: list[str],
    col: int,
    kind: Kind,
    tokeniser: Tokeniser,
    progress: Progress,
    block_bytes: int,
) -> int:
    """The fast path: Arrow batches, each distinct value tokenised once per batch.

    Raises :class:`csv_io.NotPlain` at the first invalid value or row (nothing is written).
    A row of only empty fields (perhaps a blank line) has an empty value to tokenise, which is
    invalid for every kind, so it too is left to the ``csv`` path.
    """
    done = 0
    with atomic_output(output_path) as tmp, open(tmp, "wb") as dst:
        csv_io.write_header(dst, header)
        for batch in csv_io.text_batches(input_path, columns=header, block_bytes=block_bytes):
            done_column = tokenise_column(batch.column(col), kind=kind, tokeniser=tokeniser)
            if done_column.errors:
                raise csv_io.NotPlain("invalid values")
            csv_io.write_rows(dst, batch.set_column(col, header[col], done_column.tokens))
            done += batch.num_rows
            progress.advance(batch.num_rows)
    return done


def _tokenise_python(
    input_path: Path,
    output_path: Path,
    *,
    column: str,
    kind: Kind,
    tokeniser: Tokeniser,
    progress: Progress,
    chunk_rows: int,
) -> int:
    """The ``csv`` module path: every row checked, every error listed."""
    errors: list[RowError] = []
    done = 0
    with (
        open(input_path, newline="", encoding="utf-8-sig") as src,
        atomic_output(output_path) as tmp,
        open(tmp, "w", newline="", encoding="utf-8") as dst,
    ):
        reader = csv.reader(src)
        header, col = _read_header(reader, input_path=input_path, column=column)
        width = len(header)
        writer = csv.writer(dst, lineterminator="\n")
        writer.writerow(header)
        try:
            for chunk in _chunks(reader, chunk_rows):
                bad = _tokenise_chunk(chunk, col=col, width=width, kind=kind, tokeniser=tokeniser)
                if bad:
                    errors.extend(RowError(done + i + 1, reason) for i, reason in bad)
                elif not errors:
                    writer.writerows(chunk)
                done += len(chunk)
                progress.advance(len(chunk))
        except (csv.Error, UnicodeDecodeError) as exc:
            # csv.Error messages can quote input text: name the row, not the content.
            fail(
                f"{input_path} is not a readable CSV file near data row {done + 1}: "
                f"{type(exc).__name__}"
            )
        if errors:
            raise RowErrors(
                errors,
                context=f"column {column!r} of {input_path} (data rows numbered from 1 after "
                "the header); no output written",
                limit=MAX_LISTED_ERRORS,
            )
    return done


def _tokenise_chunk(
    chunk: list[list[str]], *, col: int, width: int, kind: Kind, tokeniser: Tokeniser
) -> list[tuple[int, str]]:
    """Replace chunk rows' ``col`` with tokens in place; return [(index, reason)] if any bad."""
    bad: list[tuple[int, str]] = [
        (i, WRONG_FIELD_COUNT) for i, row in enumerate(chunk) if len(row) != width
    ]
    if bad:
        good_rows = [i for i, row in enumerate(chunk) if len(row) == width]
        column = tokenise_list([chunk[i][col] for i in good_rows], kind=kind, tokeniser=tokeniser)
        bad.extend((good_rows[j], str(reason)) for j, reason in column.errors)
        bad.sort()
        return bad
    column = tokenise_list([row[col] for row in chunk], kind=kind, tokeniser=tokeniser)
    if column.errors:
        return [(i, str(reason)) for i, reason in column.errors]
    for row, token in zip(chunk, column.tokens, strict=True):
        row[col] = token
    return []
