"""Anonymise a partitioned table: the workers count, the client searches, the workers write.

The exact search of :mod:`pseudogate.anonymity` never needs rows, only the table of distinct
combinations of quasi-identifier leaves (plus sensitive values, and the person where k counts
people) with their row counts: the *frequency table*. So the job runs in three passes over the
partitions (docs/anonymisation.md, "On a Dask cluster"):

1. **scan**: each partition's rows, the distinct values of every quasi-identifier (in order of
   first appearance) and the first invalid values of the tokenised columns;
2. **count**: the client builds each hierarchy from the distinct values, exactly as the local
   engine does from the whole column, and sends the workers each value's leaf code; they count
   the frequency table of their partition, and the partial tables are summed on the workers
   (``FAN_IN`` at a time) until one is left. The client builds the search problem from it and
   runs the unchanged search: same levels, tie-break, suppression and report figures;
3. **write**: the workers release their partition's kept rows (tokens, generalised labels,
   kept columns) into a temporary folder, renamed into place at the end.

Invalid values are found before anything is counted and reported as the local engine reports
them (rows numbered from 1 across partitions, the first 1,000 per column).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from numpy.typing import NDArray

from pseudogate.anonymity.hierarchies import ColumnHierarchy, build_hierarchy
from pseudogate.anonymity.report import AnonymisationReport, build_report
from pseudogate.batch.cluster_search import (
    CLIENT_CLASSES,
    BaseTable,
    Criteria,
    class_keys,
    group_rows,
    search_held,
)
from pseudogate.batch.inputs import NOT_PLAIN, Inputs, Part, read_batches
from pseudogate.batch.outputs import join_csv_parts, open_private, part_name, temp_dir
from pseudogate.batch.runner import Runner
from pseudogate.core import csv_io
from pseudogate.core.columns import tokenise_column
from pseudogate.core.errors import InvalidInput, RowError, RowErrors
from pseudogate.core.keyring import Keyring
from pseudogate.core.normalise import Kind
from pseudogate.core.policy import Action, Policy
from pseudogate.core.tokens import ShippedKey

__all__ = ["MAX_ERRORS_PER_COLUMN", "anonymise_parts"]

#: Invalid rows reported per column (as the local engine does).
MAX_ERRORS_PER_COLUMN = 1000
_COUNT = "count"
_INT64_SAFE = 1 << 62


@dataclass(frozen=True, slots=True)
class _Scan:
    rows: int
    uniques: dict[str, pa.Array]
    errors: dict[str, list[tuple[int, str]]]  # per tokenised column: first (row, reason)
    problem: str | None = None


def _read(part: Part, columns: tuple[str, ...], delimiter: str) -> pa.Table | str:
    """The partition as a table of utf8 columns, or the reason it cannot be one."""
    try:
        batches = list(read_batches(part, columns=columns, delimiter=delimiter))
    except csv_io.NotPlain:
        return NOT_PLAIN
    if batches:
        table = pa.Table.from_batches(batches)
    elif part.csv:
        table = pa.schema([(c, pa.string()) for c in columns]).empty_table()
    else:
        table = pq.ParquetFile(part.path).schema_arrow.empty_table()
    arrays = []
    for name, column in zip(table.column_names, table.columns, strict=True):
        if pa.types.is_dictionary(column.type):
            column = column.cast(column.type.value_type)
        if pa.types.is_large_string(column.type) or pa.types.is_string_view(column.type):
            column = column.cast(pa.string())
        if not pa.types.is_string(column.type) or column.null_count:
            return f"column:{name}"
        arrays.append(column.combine_chunks())
    return pa.Table.from_arrays(arrays, names=table.column_names)


def _scan_part(part: Part, *, columns: tuple[str, ...], delimiter: str, qis: tuple[str, ...],
               tokenised: tuple[tuple[str, Kind, ShippedKey], ...]) -> _Scan:
    table = _read(part, columns, delimiter)
    if isinstance(table, str):
        return _Scan(0, {}, {}, problem=table)
    uniques = {name: pc.unique(table[name].chunk(0)) for name in qis}
    errors: dict[str, list[tuple[int, str]]] = {}
    for name, kind, key in tokenised:
        done = tokenise_column(table[name], kind=kind, tokeniser=key.tokeniser())
        errors[name] = done.errors[:MAX_ERRORS_PER_COLUMN]
    return _Scan(table.num_rows, uniques, errors)


def _find_part(part: Part, *, columns: tuple[str, ...], delimiter: str,
               invalid: dict[str, tuple[pa.Array, list[str]]]) -> dict[str, list[tuple[int, str]]]:
    """Rows holding the invalid hierarchy values (the first ones per column)."""
    table = _read(part, columns, delimiter)
    assert not isinstance(table, str)
    found: dict[str, list[tuple[int, str]]] = {}
    for name, (values, reasons) in invalid.items():
        at = pc.index_in(table[name], value_set=values).to_numpy(zero_copy_only=False)
        present = ~np.isnan(at) if at.dtype.kind == "f" else np.ones(len(at), dtype=bool)
        rows = np.flatnonzero(present)[:MAX_ERRORS_PER_COLUMN]
        found[name] = [(int(r), reasons[int(at[r])]) for r in rows]
    return found


@dataclass(frozen=True)
class _Leaves:
    """A quasi-identifier's distinct values and each one's leaf code."""

    values: pa.Array
    leaf: NDArray[np.int64]

    def of(self, column: pa.Array | pa.ChunkedArray) -> NDArray[np.int64]:
        at = pc.index_in(column, value_set=self.values).to_numpy(zero_copy_only=False)
        leaf: NDArray[np.int64] = self.leaf[at]
        return leaf


def _base_part(part: Part, *, columns: tuple[str, ...], delimiter: str,
               leaves: tuple[tuple[str, _Leaves], ...], extra: tuple[str, ...]) -> BaseTable:
    """The partition's frequency table: distinct leaf codes and extra values, with counts
    (kept on the worker for the search, pseudogate.batch.cluster_search)."""
    table = _read(part, columns, delimiter)
    assert not isinstance(table, str)
    codes = [lv.of(table[name]) for name, lv in leaves]
    cards = [max(len(lv.values), 1) for _, lv in leaves]
    values = [table[name].to_numpy(zero_copy_only=False) for name in extra]
    return group_rows(codes, cards, values, np.ones(table.num_rows, dtype=np.int64))


@dataclass(frozen=True)
class _Release:
    """What the workers need to write the kept rows."""

    out: tuple[tuple[str, str], ...]  # (column, how): "token", "label" or "text"
    tokenised: dict[str, tuple[Kind, ShippedKey]]
    leaves: dict[str, _Leaves]
    labels: dict[str, pa.Array]  # per QI: released label of each leaf
    level_code: dict[str, NDArray[np.int64]]  # per QI: leaf -> code at the chosen level
    radix: tuple[tuple[str, int], ...]  # QIs and their card at the chosen level
    failed_keys: NDArray[np.int64] = field(repr=False)  # sorted keys of suppressed classes


def _write_part(job: tuple[int, Part], *, columns: tuple[str, ...], delimiter: str,
                out_dir: str, csv_out: bool, release: _Release) -> int:
    index, part = job
    table = _read(part, columns, delimiter)
    assert not isinstance(table, str)
    n = table.num_rows
    codes = [release.level_code[name][release.leaves[name].of(table[name])]
             for name, _ in release.radix]
    keys = class_keys(codes, [card for _, card in release.radix], n)
    failed = release.failed_keys
    if len(failed):
        at = np.minimum(np.searchsorted(failed, keys), len(failed) - 1)
        kept = failed[at] != keys
    else:
        kept = np.ones(n, dtype=bool)
    rows = pa.array(np.flatnonzero(kept))
    out: dict[str, pa.Array] = {}
    for name, how in release.out:
        column = table[name].chunk(0) if table[name].num_chunks else pa.array([], pa.string())
        if how == "token":
            kind, key = release.tokenised[name]
            out[name] = tokenise_column(column.take(rows), kind=kind,
                                        tokeniser=key.tokeniser()).tokens
        elif how == "label":
            leaf = release.leaves[name].of(column)[kept]
            out[name] = release.labels[name].take(pa.array(leaf, type=pa.int64()))
        else:
            out[name] = column.take(rows)
    result = pa.table(out, schema=pa.schema([(name, pa.string()) for name, _ in release.out]))
    target = Path(out_dir) / part_name(index, csv_out=csv_out)
    with open(open_private(target), "wb") as sink:
        if csv_out:
            for batch in result.to_batches(max_chunksize=1 << 16):
                csv_io.write_rows(sink, batch, delimiter=delimiter)
        else:
            pq.write_table(result, sink)
    return len(rows)


@dataclass(frozen=True)
class BatchResult:
    """The report, and the number of rows written."""

    report: AnonymisationReport
    rows_out: int


def _raise_problems(scans: list[_Scan], inputs: Inputs) -> None:
    for scan, part in zip(scans, inputs.parts, strict=True):
        if scan.problem == NOT_PLAIN:
            raise InvalidInput(
                f"{part.path} is not a plain CSV file (a row with the wrong number of fields, a "
                "blank line, a carriage return inside a value, or text that is not UTF-8): "
                "anonymise it with --engine local, which says where"
            )
        if scan.problem is not None:
            name = scan.problem.removeprefix("column:")
            raise InvalidInput(f"column {name!r} holds non-text cells (read CSVs with dtype=str, "
                               "keep_default_na=False)")


def _global_rows(per_part: list[list[tuple[int, str]]], scans: list[_Scan]
                 ) -> list[tuple[int, str]]:
    """Partition rows numbered across partitions (from 0), the first 1,000."""
    rows: list[tuple[int, str]] = []
    offset = 0
    for found, scan in zip(per_part, scans, strict=True):
        rows.extend((offset + r, reason) for r, reason in found)
        offset += scan.rows
        if len(rows) >= MAX_ERRORS_PER_COLUMN:
            break
    return rows[:MAX_ERRORS_PER_COLUMN]


def anonymise_parts(
    inputs: Inputs,
    output: Path,
    policy: Policy,
    *,
    runner: Runner,
    keyring: Keyring | None = None,
    person_column: str | None = None,
    delimiter: str = ",",
    publish: Callable[[BatchResult], None] | None = None,
    client_classes: int = CLIENT_CLASSES,
    progress: Callable[[str], None] | None = None,
) -> BatchResult:
    """Anonymise every partition into ``output`` (a folder of Parquet partitions, or one CSV
    file when its name ends ``.csv``); the same levels, suppressed rows and report figures as
    :func:`pseudogate.anonymity.anonymise` on the whole table.

    ``publish`` runs after the output is complete and before it is renamed into place (the
    caller writes its reports there, so that either all appear or none do).
    ``client_classes``: the most distinct rows of the frequency table the client searches
    itself; a larger table is searched from a floor, lower transformations on the workers
    (``progress`` hears how that goes).
    """
    privacy = policy.privacy
    if privacy is None:
        raise InvalidInput(f"policy {policy.name!r} has no privacy section: nothing to anonymise "
                           "against")
    columns = inputs.columns
    policy.check_input_columns(list(columns))
    for rule in policy.columns:
        if rule.action is Action.IDENTIFY:
            raise InvalidInput(f"policy {policy.name!r}: column {rule.name!r} (line {rule.line}) "
                               "is 'identify'; identity fields are for ingestion policies: drop "
                               "the column to anonymise")
    if person_column is not None and policy.rule(person_column).action is not Action.KEEP:
        raise InvalidInput(f"person column {person_column!r} must be a 'keep' column")
    if policy.tokenised_columns and keyring is None:
        raise InvalidInput(f"policy {policy.name!r} tokenises columns but no keyring was given")
    csv_out = output.suffix == ".csv"
    if not csv_out and output.exists():
        raise InvalidInput(f"output {output} already exists: name a new folder")

    tokenised: dict[str, tuple[Kind, ShippedKey]] = {}
    for rule in policy.columns:
        if rule.action is Action.TOKENISE:
            assert keyring is not None and rule.kind is not None and rule.domain is not None
            tokenised[rule.name] = (rule.kind, keyring.linkage_key_to_ship(rule.domain))
    qi_rules = [r for r in policy.columns if r.action is Action.GENERALISE]
    qis = tuple(r.name for r in qi_rules)
    common: dict[str, Any] = {"columns": columns, "delimiter": delimiter}
    parts = list(inputs.parts)

    # 1. scan
    scans = runner.map(_scan_part, parts, qis=qis, **common,
                       tokenised=tuple((n, k, key) for n, (k, key) in tokenised.items()))
    _raise_problems(scans, inputs)
    n = sum(s.rows for s in scans)
    errors: list[RowError] = []
    for name in tokenised:
        for r, reason in _global_rows([s.errors[name] for s in scans], scans):
            errors.append(RowError(row=r + 1, reason=reason, column=name))
    hierarchies: list[ColumnHierarchy] = []
    invalid: dict[str, tuple[pa.Array, list[str]]] = {}
    for rule in qi_rules:
        assert rule.hierarchy is not None
        arrays = [s.uniques[rule.name] for s in scans]
        values = pc.unique(pa.concat_arrays(arrays)) if arrays else pa.array([], pa.string())
        found: list[RowError] = []
        h = build_hierarchy(rule.hierarchy, pd.Series(values.to_numpy(zero_copy_only=False),
                                                      dtype=object),
                            column=rule.name, files=dict(policy.files), errors=found)
        if h is None:  # rows of `found` are positions among the distinct values
            invalid[rule.name] = (values.take(pa.array([e.row - 1 for e in found])),
                                  [str(e.reason) for e in found])
        else:
            hierarchies.append(h)
    if invalid:
        located = runner.map(_find_part, parts, **common, invalid=invalid)
        for name in invalid:
            for r, reason in _global_rows([f[name] for f in located], scans):
                errors.append(RowError(row=r + 1, reason=reason, column=name))
    if errors:
        errors.sort(key=lambda e: (e.row, e.column))
        raise RowErrors(errors, context="input")

    # 2. count on the workers, then search (on the client, or split: cluster_search)
    leaves = {h.column: _Leaves(pa.array(_values_of(h, scans)), h.codes) for h in hierarchies}
    extra = tuple(policy.sensitive_columns) + ((person_column,) if person_column else ())
    held = runner.hold(_base_part, parts, **common, extra=extra,
                       leaves=tuple((h.column, leaves[h.column]) for h in hierarchies))
    try:
        chosen = search_held(
            runner, held, hierarchies, n=n, max_suppressed=privacy.max_suppressed(n),
            metric=privacy.metric, client_classes=client_classes,
            workers=getattr(runner, "workers", 1), progress=progress,
            criteria=Criteria(k=privacy.k, l=privacy.l,
                              sensitive=len(policy.sensitive_columns),
                              persons=person_column is not None))
    finally:
        runner.release(held)
    best = chosen.outcome.best
    report = build_report(policy=policy, problem=chosen.problem, outcome=chosen.outcome,
                          qi_names=[h.column for h in hierarchies], person_column=person_column,
                          sizes=chosen.sizes)

    # 3. write the kept rows
    level_code = {h.column: h.up[lv] for h, lv in zip(hierarchies, best.levels, strict=True)}
    radix = tuple((h.column, len(h.labels[lv]))
                  for h, lv in zip(hierarchies, best.levels, strict=True))
    if radix and np.prod([float(c) for _, c in radix]) >= _INT64_SAFE:
        raise InvalidInput("the chosen levels have too many classes to name in 62 bits: "
                           "not supported on a cluster yet (use --engine local)")
    release = _Release(
        out=tuple((r.name, {Action.TOKENISE: "token", Action.GENERALISE: "label"}.get(
            r.action, "text")) for r in (policy.rule(name) for name in columns)
            if r.action is not Action.DROP),
        tokenised=tokenised, leaves=leaves,
        labels={h.column: pa.array(np.asarray(h.labels[lv], dtype=object)[h.up[lv]],
                                   type=pa.string())
                for h, lv in zip(hierarchies, best.levels, strict=True)},
        level_code=level_code, radix=radix,
        failed_keys=chosen.failed_keys([card for _, card in radix]),
    )
    tmp = temp_dir(output)
    try:
        written = runner.map(_write_part, list(enumerate(parts)), **common, out_dir=str(tmp),
                             csv_out=csv_out, release=release)
        result = BatchResult(report, sum(written))
        assert result.rows_out == report.rows_out
        _publish(tmp, output, csv_out=csv_out, names=[name for name, _ in release.out],
                 delimiter=delimiter, parts=len(parts),
                 before=(lambda: publish(result)) if publish is not None else None)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return result


def _values_of(h: ColumnHierarchy, scans: list[_Scan]) -> pa.Array:
    arrays = [s.uniques[h.column] for s in scans]
    return pc.unique(pa.concat_arrays(arrays)) if arrays else pa.array([], pa.string())


def _publish(tmp: Path, output: Path, *, csv_out: bool, names: list[str], delimiter: str,
             parts: int, before: Callable[[], None] | None) -> None:
    if csv_out:
        joined = join_csv_parts(tmp, names=names, parts=parts, delimiter=delimiter)
        if before is not None:
            before()
        os.replace(joined, output)
    else:
        if before is not None:
            before()
        os.rename(tmp, output)

