"""The linkage report: counts only (records, distinct people, people shared by two datasets)."""

from __future__ import annotations

import itertools
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from pseudogate.core.columns import as_text
from pseudogate.core.names import DEFAULT_DOMAIN
from pseudogate.store.catalog import Catalog
from pseudogate.store.datasets import DatasetFiles

__all__ = ["linkage_report"]


def linkage_report(
    catalog: Catalog, files: DatasetFiles, *, domain: str = DEFAULT_DOMAIN
) -> dict[str, Any]:
    """``{"datasets": {name: {"version", "records", "people"}}, "overlap": {"a|b": people}}``.

    People are the distinct tokens of each latest version's one column tokenised under
    ``domain``; a dataset without exactly one such column has ``people`` null and no overlaps.
    An empty token (a record stored without an NHS number, linked by identity fields) is no
    person here: it is neither counted nor shared.
    """
    datasets: dict[str, dict[str, Any]] = {}
    people: dict[str, pa.Array] = {}
    for name in catalog.dataset_names():
        version = catalog.latest_version(name)
        if version is None:
            continue
        links = version.token_columns(domain)
        entry: dict[str, Any] = {"version": version.version, "records": version.rows, "people": None}
        if len(links) == 1:
            column = as_text(files.read(version.file, columns=links).column(links[0]))
            distinct = pc.unique(column)
            distinct = pc.filter(distinct, pc.not_equal(distinct, ""))
            people[name] = distinct
            entry["people"] = len(distinct)
        datasets[name] = entry
    overlap: dict[str, int] = {}
    for a, b in itertools.combinations(sorted(people), 2):
        shared = pc.sum(pc.is_in(people[a], value_set=people[b])).as_py() or 0
        overlap[f"{a}|{b}"] = int(shared)
    return {"datasets": datasets, "overlap": overlap}
