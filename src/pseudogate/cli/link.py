"""``pseudogate link``: cluster the records of CSV files into people, offline.

Each input is read through its policy's ``identify`` columns (and its NHS number column, if
any); the records are encoded under the keyring's linkage key, compared on their encodings
only, and clustered (docs/linkage.md, "Matching and clustering"). The output ``clusters.csv``
has the header ``file,row,cluster`` and one line per input data row: ``file`` is the 1-based
position of the input on the command line, ``row`` the 1-based data row (header excluded),
``cluster`` an opaque id; rows with the same cluster are one person. One ``--policy`` applies
to every input, otherwise give exactly one per input, in order.

Raw values never appear in the output or in errors: a bad row is named by input, row and
reason code.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pseudogate.cli._common import EXAMPLE_KEYS_WARNING, Progress, fail, warn
from pseudogate.core.errors import ConfigurationError, RowError, RowErrors, shown
from pseudogate.core.fileio import atomic_output
from pseudogate.core.identity import IdentityField
from pseudogate.core.keyring import Keyring
from pseudogate.core.normalise import Kind, normalise_many
from pseudogate.core.policy import Action, load_policy
from pseudogate.linkage.engine import DEFAULT_THRESHOLD, LinkResult, link
from pseudogate.linkage.fbf_records import from_encodings, nhs_codes
from pseudogate.linkage.records import EncodedRecords

__all__ = ["IdentityColumns", "LinkInputs", "identity_columns", "link_files", "read_inputs",
           "register"]

MAX_LISTED_ERRORS = 50
WRONG_FIELD_COUNT = "wrong_field_count"
#: The identity fields, in IdentityField order (the encoder's input keys).
IDENTITY_FIELDS = tuple(f.value for f in IdentityField)


@dataclass(frozen=True)
class IdentityColumns:
    """What linkage reads of an input: the column per identity field, and the column tokenised
    as ``nhs_number`` with its token domain (if any)."""

    name: str
    fields: dict[str, str]  # field -> column
    nhs_column: str | None
    nhs_domain: str | None

    @property
    def columns(self) -> tuple[str, ...]:
        named = list(self.fields.values())
        return (*named, self.nhs_column) if self.nhs_column else tuple(named)


def identity_columns(path: Path) -> IdentityColumns:
    """The identify columns and the (first) NHS number column of a policy file.

    The policy parser checks the policy (a field identified twice, an unknown field, ...);
    a policy with neither identity fields nor an NHS number column is refused here.
    """
    policy = load_policy(path)
    fields = {f.value: column for column, f in policy.identity_columns.items()}
    nhs = next((r for r in policy.columns
                if r.action is Action.TOKENISE and r.kind is Kind.NHS_NUMBER), None)
    if not fields and nhs is None:
        raise ConfigurationError(f"policy {path}: names no identity field and no NHS number "
                                 "column: nothing to link on")
    return IdentityColumns(policy.name, fields, nhs.name if nhs else None,
                           nhs.domain if nhs else None)


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "link",
        help="cluster the records of CSV files into people (offline linkage quality check)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--keyring", type=Path, required=True, help="keyring file")
    p.add_argument("--policy", type=Path, action="append", required=True,
                   help="ingestion policy with identify columns: once for every input, or "
                        "once per input in order")
    p.add_argument("inputs", type=Path, nargs="+", metavar="INPUT.csv",
                   help="CSV files with a header row")
    p.add_argument("--output", type=Path, required=True, help="clusters CSV to write")
    p.add_argument("--threshold", type=float, default=None,
                   help=f"match probability at or above which two records may be one person "
                        f"(default {DEFAULT_THRESHOLD})")
    p.set_defaults(handler=run)


class LinkInputs:
    """The identity values of every input, concatenated in input order."""

    def __init__(self) -> None:
        self.values: dict[str, list[str | None]] = {f: [] for f in IDENTITY_FIELDS}
        self.nhs: list[str | None] = []
        self.source: list[int] = []
        self.row: list[int] = []


def _policies(paths: Sequence[Path], inputs: Sequence[Path]) -> list[IdentityColumns]:
    if len(paths) != 1 and len(paths) != len(inputs):
        fail(f"give one --policy for every input, or exactly one per input in order "
             f"({len(paths)} policies for {len(inputs)} inputs)")
    read = [identity_columns(p) for p in paths]
    return read * len(inputs) if len(read) == 1 else read


def _read_one(path: Path, number: int, policy: IdentityColumns, ring: Keyring,
              into: LinkInputs) -> None:
    if not path.is_file():
        fail(f"input {number} ({path}) does not exist")
    errors: list[RowError] = []
    nhs_raw: list[str] = []
    nhs_rows: list[int] = []
    n = 0
    try:
        with open(path, newline="", encoding="utf-8-sig") as src:
            reader = csv.reader(src)
            header = next(reader, None)
            if header is None:
                fail(f"input {number} ({path}) is empty: a header row is expected")
            for column in policy.columns:
                if header.count(column) != 1:
                    fail(f"column {shown(column)} of policy {shown(policy.name)} appears "
                         f"{header.count(column)} times in input {number} ({path}); once is "
                         "expected")
            where = {f: header.index(c) for f, c in policy.fields.items()}
            nhs_at = header.index(policy.nhs_column) if policy.nhs_column else None
            width = len(header)
            for n, record in enumerate(reader, 1):
                if len(record) != width:
                    errors.append(RowError(n, WRONG_FIELD_COUNT))
                    record = [""] * width
                for f in IDENTITY_FIELDS:
                    into.values[f].append(record[where[f]] or None if f in where else None)
                value = record[nhs_at].strip() if nhs_at is not None else ""
                if value:
                    nhs_raw.append(value)
                    nhs_rows.append(len(into.nhs))
                into.nhs.append(None)
                into.source.append(number - 1)
                into.row.append(n)
    except (csv.Error, UnicodeDecodeError) as exc:
        fail(f"input {number} ({path}) is not a readable CSV file near data row {n + 1}: "
             f"{type(exc).__name__}")
    if nhs_raw:
        normalised, bad = normalise_many(Kind.NHS_NUMBER, nhs_raw)
        errors.extend(RowError(into.row[nhs_rows[i]], f"nhs_number_{reason}")
                      for i, reason in bad)
        good = [(k, v) for k, v in zip(nhs_rows, normalised, strict=True) if v is not None]
        tokeniser = ring.linkage_tokeniser(policy.nhs_domain or Kind.NHS_NUMBER.value)
        for (k, _), token in zip(good, tokeniser.tokens([v for _, v in good]), strict=True):
            into.nhs[k] = token
    if errors:
        errors.sort(key=lambda e: e.row)
        raise RowErrors(errors, context=f"input {number} ({path}; data rows numbered from 1 "
                                        "after the header)", limit=MAX_LISTED_ERRORS)


def read_inputs(inputs: Sequence[Path], policies: Sequence[IdentityColumns],
                ring: Keyring) -> LinkInputs:
    """The identity values and NHS tokens of every input (row errors listed, never values)."""
    domains = {p.nhs_domain for p in policies if p.nhs_column}
    if len(domains) > 1:
        fail("the inputs' NHS number columns are tokenised under different domains "
             f"({sorted(str(d) for d in domains)}): their tokens cannot be compared")
    into = LinkInputs()
    for number, (path, policy) in enumerate(zip(inputs, policies, strict=True), 1):
        _read_one(path, number, policy, ring, into)
    return into


def _encode(ring: Keyring, inputs: LinkInputs) -> EncodedRecords:
    """The engine's table from ``pg-fbf-v1`` encodings, by the path the gateway stores them.

    Each input is encoded under the keyring's linkage key, sealed (the stored form) and
    opened again in memory; the opened batches must share one key (else refused, naming the
    inputs) and are mapped into the engine's table (``linkage/fbf_records.py``).
    """
    encoder = ring.linkage_encoder()
    source = np.asarray(inputs.source, dtype=np.int64)
    batches = []
    names = []
    for number in (np.unique(source) + 1).tolist() or [1]:  # no records: one empty batch
        at = np.flatnonzero(source == number - 1).tolist()
        columns = {f: [v[i] for i in at] for f, v in inputs.values.items()}
        name = f"input {number}"
        batches.append(encoder.open(encoder.seal(encoder.encode(columns, n=len(at))), name=name))
        names.append(name)
    return from_encodings(batches, names=names, nhs=nhs_codes(inputs.nhs),
                          source=inputs.source, row=inputs.row)


def link_files(inputs: Sequence[Path], policies: Sequence[Path], *, ring: Keyring,
               output: Path, threshold: float = DEFAULT_THRESHOLD,
               show_progress: bool = False) -> LinkResult:
    """Read, encode, link and write ``output``; the code path of ``pseudogate link``."""
    if not output.parent.is_dir():
        fail(f"output folder {output.parent} does not exist")
    if not 0.0 < threshold < 1.0:
        fail("--threshold is a match probability strictly between 0 and 1")
    read = read_inputs(inputs, _policies(policies, inputs), ring)
    table = _encode(ring, read)
    with Progress("comparing pairs", None) as progress:
        result = link(table, threshold=threshold,
                      progress=progress.advance if show_progress else None)
    with atomic_output(output) as tmp, open(tmp, "w", newline="", encoding="utf-8") as dst:
        writer = csv.writer(dst, lineterminator="\n")
        writer.writerow(["file", "row", "cluster"])
        labels = result.labels + 1
        writer.writerows(zip((table.source + 1).tolist(), table.row.tolist(),
                             labels.tolist(), strict=True))
    return result


def run(args: argparse.Namespace) -> int:
    ring = Keyring.load(args.keyring)
    if ring.is_example:
        warn(EXAMPLE_KEYS_WARNING)
    threshold = DEFAULT_THRESHOLD if args.threshold is None else args.threshold
    result = link_files(args.inputs, args.policy, ring=ring, output=args.output,
                        threshold=threshold, show_progress=sys.stderr.isatty())
    n_clusters = result.clustering.n_clusters
    print(f"{result.records:,} records in {len(args.inputs)} file(s); {n_clusters:,} clusters; "
          f"{result.pairs_compared:,} pairs compared; threshold {threshold}; "
          f"{result.seconds:.1f} s; wrote {args.output}")
    if result.skipped_blocks:
        print(f"note: {result.skipped_blocks:,} blocking-key blocks were too large to compare "
              "whole; their pairs were compared only when they shared another key")
    return 0
