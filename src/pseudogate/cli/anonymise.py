"""``pseudogate anonymise``: tokenise, generalise and suppress a table under a policy.

Everything is computed before anything is written; the output table, JSON report and HTML
report are then renamed into place together, so bad input (exit status 2) leaves no output.

``--engine local`` (the default) reads a CSV file into memory; a Parquet input (a file, folder
or glob) or ``--engine dask`` runs the partitioned job of :mod:`pseudogate.batch.anonymise`
(in this process, or on a Dask cluster): the workers count the equivalence-class frequency
table, this process runs the same exact search on it, and the workers write the kept rows (a
folder of Parquet partitions, or one CSV file when the output name ends ``.csv``).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import re
import sys
from collections.abc import Collection
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from pseudogate.anonymity import anonymise
from pseudogate.anonymity.html_report import render_html
from pseudogate.cli._common import EXAMPLE_KEYS_WARNING, Progress, fail, warn
from pseudogate.cli._engine import (
    Engine,
    add_engine_arguments,
    check_engine_arguments,
    is_parquet_input,
    runner_for,
)
from pseudogate.core import csv_io
from pseudogate.core.fileio import atomic_output
from pseudogate.core.keyring import EXAMPLE_KEYRING, Keyring
from pseudogate.core.policy import column_label, load_policy

__all__ = ["read_table", "register"]

_STAGES = {"encode": (0, 20), "search": (20, 90), "output": (90, 100)}
_WRITE_ROWS = 65_536


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "anonymise",
        help="k-anonymise a CSV file under a policy (optimal generalisation + report)",
        description=__doc__,
    )
    p.add_argument("--policy", type=Path, required=True, help="policy YAML file")
    p.add_argument("--input", type=Path, required=True,
                   help="CSV file with a header row, or a Parquet file, folder or glob")
    p.add_argument("--output", type=Path, required=True,
                   help="anonymised CSV file to write (with --engine dask or a Parquet input: "
                   "a folder of Parquet partitions unless the name ends .csv)")
    p.add_argument("--report", type=Path, required=True, help="JSON report to write")
    p.add_argument("--html", type=Path, help="HTML report to write")
    p.add_argument("--keyring", type=Path,
                   help="keyring for tokenised columns (default: the public EXAMPLE keyring)")
    p.add_argument("--delimiter", default=",",
                   help="field delimiter of the input (and output); default ','")
    add_engine_arguments(p)
    p.add_argument("--client-classes", type=int, metavar="N",
                   help="partitioned runs (--engine dask or a Parquet input): the most distinct "
                   "rows of the frequency table this process searches itself (default "
                   "8,000,000, about 600 bytes each); beyond it the search starts from a coarser "
                   "floor and evaluates the transformations below it on the workers")
    p.set_defaults(handler=run)


def read_table(path: Path, *, delimiter: str, known: Collection[str] = ()) -> pd.DataFrame:
    """Read a CSV as text cells only; malformed files are refused with a line number.

    The whole table is held in memory (the k-anonymity search needs all of it).
    """
    if len(delimiter) != 1 or delimiter in "\r\n\"":
        fail(f"delimiter {delimiter!r} must be a single character other than a quote or newline")
    if not path.is_file():
        fail(f"input file {path} does not exist")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            header = next(csv.reader(f, delimiter=delimiter), None)
    except UnicodeDecodeError:
        fail(f"input file {path} is not UTF-8 text")
    except csv.Error:
        fail(f"input file {path}: malformed header row")
    if not header:
        fail(f"input file {path} is empty: a header row is expected")
    seen: set[str] = set()
    for position, name in enumerate(header, 1):
        if name in seen:
            label = column_label(name, position, known=known)
            fail(f"input file {path}: column {label} appears more than "
                 "once in the header")
        seen.add(name)
    try:
        return _read_with_arrow(path, header=header, delimiter=delimiter)
    except csv_io.NotPlain:
        pass  # pandas reads it, and words any error, as it always has
    try:
        return pd.read_csv(path, sep=delimiter, dtype=str, keep_default_na=False,
                           na_filter=False, encoding="utf-8-sig", engine="c")
    except pd.errors.ParserError as exc:
        line = re.search(r"line (\d+)", str(exc))
        where = f" at line {line.group(1)}" if line else ""
        fail(f"input file {path}: wrong number of fields{where} (is --delimiter right?)")
    except UnicodeDecodeError:
        fail(f"input file {path} is not UTF-8 text")


def _byte_counts(path: Path) -> tuple[int, int, int]:
    """(carriage returns, CR LF pairs, quotes) in the file, read 1 MiB at a time."""
    cr = crlf = quotes = 0
    previous = b""
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            cr += block.count(b"\r")
            crlf += (previous + block).count(b"\r\n")  # a pair may straddle two blocks
            quotes += block.count(b'"')
            previous = block[-1:]
    return cr, crlf, quotes


def _read_with_arrow(path: Path, *, header: list[str], delimiter: str) -> pd.DataFrame:
    """The table as ``pd.read_csv`` reads it, through Arrow's faster reader.

    Raises :class:`csv_io.NotPlain` for what pandas reads its own way: an unnamed column,
    a carriage return not followed by a line feed, an odd number of quotes or a file that may
    end inside quotes (pandas refuses both), an all-empty row (perhaps a blank line, which
    pandas skips), and whatever Arrow refuses (wrong field counts: pandas says at which line).
    """
    cr, crlf, quotes = _byte_counts(path)
    if "" in header or cr != crlf or quotes % 2:
        raise csv_io.NotPlain("pandas reads this file its own way")
    schema = pa.schema([(name, pa.string()) for name in header])
    batches = []
    for batch in csv_io.text_batches(path, columns=header, delimiter=delimiter):
        if csv_io.has_blank_row(batch):
            raise csv_io.NotPlain("a row of empty fields")
        batches.append(batch)
    if batches and batches[-1].num_rows:
        last = batches[-1].column(batches[-1].num_columns - 1)[-1].as_py()
        open_field = ('"' + last.replace('"', '""')).encode("utf-8")
        with open(path, "rb") as f:
            f.seek(max(path.stat().st_size - len(open_field), 0))
            if f.read() == open_field:
                raise csv_io.NotPlain("the last quoted field may be open")  # Arrow closes it
    table: pd.DataFrame = pa.Table.from_batches(batches, schema=schema).to_pandas()
    del batches
    pa.default_memory_pool().release_unused()  # the table now lives in pandas
    return table


def _write_table(table: pd.DataFrame, path: Path, *, delimiter: str) -> None:
    """``table.to_csv(path, sep=delimiter, index=False, lineterminator="\\n")``, byte for byte,
    through Arrow (a slice of rows at a time) when every cell is a string, else through pandas."""
    names = [str(c) for c in table.columns]
    with open(path, "wb") as f:
        csv_io.write_header(f, names, delimiter=delimiter)
        for start in range(0, len(table), _WRITE_ROWS):
            part = table.iloc[start : start + _WRITE_ROWS]
            try:
                arrays = [pa.array(part.iloc[:, i].to_numpy(dtype=object), type=pa.string(),
                                   from_pandas=True) for i in range(len(names))]
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                break
            if any(array.null_count for array in arrays):
                break
            csv_io.write_rows(f, pa.RecordBatch.from_arrays(arrays, names=names),
                              delimiter=delimiter)
        else:
            return
    table.to_csv(path, sep=delimiter, index=False, lineterminator="\n", encoding="utf-8")


def _check_delimiter(delimiter: str) -> None:
    if len(delimiter) != 1 or delimiter in "\r\n\"":
        fail(f"delimiter {delimiter!r} must be a single character other than a quote or newline")


def _keyring(args: argparse.Namespace) -> Keyring:
    if args.keyring is None:
        warn(EXAMPLE_KEYS_WARNING)
        return Keyring.load(EXAMPLE_KEYRING)
    keyring = Keyring.load(args.keyring)
    if keyring.is_example:
        warn(EXAMPLE_KEYS_WARNING)
    return keyring


def _check_output_folders(args: argparse.Namespace) -> None:
    for out in (args.output, args.report, args.html):
        if out is not None and not (out.parent if str(out.parent) else Path(".")).is_dir():
            fail(f"output folder {out.parent} does not exist")


def _summary(rep: dict[str, Any], args: argparse.Namespace) -> str:
    return (
        f"{rep['rows_out']:,} of {rep['rows_in']:,} rows released ({rep['suppressed']:,} "
        f"suppressed) in {rep['classes']:,} classes; levels "
        + ", ".join(f"{k}={v}" for k, v in rep["levels"].items())
        + f"; k achieved {rep['k_achieved']}; wrote {args.output}, {args.report}"
        + (f", {args.html}" if args.html else "")
    )


def _run_batch(args: argparse.Namespace, policy: Any) -> int:
    """Partition by partition, in this process or on a Dask cluster."""
    from pseudogate.batch.anonymise import BatchResult, anonymise_parts
    from pseudogate.batch.inputs import find_inputs

    _check_delimiter(args.delimiter)
    inputs = find_inputs(args.input, delimiter=args.delimiter)
    known = {rule.name for rule in policy.columns}
    seen: set[str] = set()
    for position, name in enumerate(inputs.columns, 1):
        if name in seen:
            fail(f"input file {args.input}: column {column_label(name, position, known=known)} "
                 "appears more than once in the header")
        seen.add(name)
    _check_output_folders(args)
    if len(inputs.columns) == 1 and any(d in inputs.columns[0] for d in ",;\t|"):
        fail(f"input file {args.input} has a single column whose name contains a delimiter: "
             f"is --delimiter right (it is {args.delimiter!r})?")
    keyring = _keyring(args) if policy.tokenised_columns else None

    def publish(result: BatchResult) -> None:
        # The reports go into place just before the table (a rename): all appear, or none.
        report_text = json.dumps(result.report.to_json(), indent=2, sort_keys=False) + "\n"
        with contextlib.ExitStack() as stack:
            stack.enter_context(atomic_output(args.report)).write_text(report_text,
                                                                       encoding="utf-8")
            if args.html is not None:
                stack.enter_context(atomic_output(args.html)).write_text(
                    render_html(result.report), encoding="utf-8")

    limit = {} if args.client_classes is None else {"client_classes": args.client_classes}
    with runner_for(args) as runner:
        result = anonymise_parts(inputs, args.output, policy, runner=runner, keyring=keyring,
                                 delimiter=args.delimiter, publish=publish,
                                 progress=lambda message: print(message, file=sys.stderr),
                                 **limit)
    print(_summary(result.report.to_json(), args), file=sys.stdout)
    return 0


def run(args: argparse.Namespace) -> int:
    check_engine_arguments(args)
    batch = Engine(args.engine) is Engine.DASK or is_parquet_input(args.input)
    if args.client_classes is not None:
        if not batch:
            fail("--client-classes applies to partitioned runs (--engine dask, or a Parquet "
                 "input)")
        if args.client_classes < 1:
            fail(f"--client-classes must be at least 1 (got {args.client_classes})")
    policy = load_policy(args.policy)
    if batch:
        return _run_batch(args, policy)
    table = read_table(
        args.input, delimiter=args.delimiter, known={rule.name for rule in policy.columns}
    )
    for out in (args.output, args.report, args.html):
        if out is not None and not (out.parent if str(out.parent) else Path(".")).is_dir():
            fail(f"output folder {out.parent} does not exist")
    if len(table.columns) == 1 and any(d in str(table.columns[0]) for d in ",;\t|"):
        fail(f"input file {args.input} has a single column whose name contains a delimiter: "
             f"is --delimiter right (it is {args.delimiter!r})?")
    keyring = None
    if policy.tokenised_columns:
        if args.keyring is None:
            warn(EXAMPLE_KEYS_WARNING)
            keyring = Keyring.load(EXAMPLE_KEYRING)
        else:
            keyring = Keyring.load(args.keyring)
            if keyring.is_example:
                warn(EXAMPLE_KEYS_WARNING)
    with Progress("anonymising", total=100) as bar:

        def progress(stage: str, fraction: float) -> None:
            lo, hi = _STAGES.get(stage, (0, 100))
            target = int(lo + (hi - lo) * fraction)
            if target > bar.done:
                bar.advance(target - bar.done)

        result = anonymise(table, policy, keyring=keyring, progress=progress)
    report_json = result.report.to_json()
    report_text = json.dumps(report_json, indent=2, sort_keys=False) + "\n"
    html_text = render_html(result.report) if args.html is not None else None
    # All outputs are renamed into place only after every one was written.
    with contextlib.ExitStack() as stack:
        out_tmp = stack.enter_context(atomic_output(args.output))
        rep_tmp = stack.enter_context(atomic_output(args.report))
        _write_table(result.table, out_tmp, delimiter=args.delimiter)
        rep_tmp.write_text(report_text, encoding="utf-8")
        if html_text is not None:
            stack.enter_context(atomic_output(args.html)).write_text(html_text, encoding="utf-8")
    rep = report_json
    print(
        f"{rep['rows_out']:,} of {rep['rows_in']:,} rows released ({rep['suppressed']:,} "
        f"suppressed) in {rep['classes']:,} classes; levels "
        + ", ".join(f"{k}={v}" for k, v in rep["levels"].items())
        + f"; k achieved {rep['k_achieved']}; wrote {args.output}, {args.report}"
        + (f", {args.html}" if args.html else ""),
        file=sys.stdout,
    )
    return 0
