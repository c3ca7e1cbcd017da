"""The linkage report: counts only (records, distinct people, people shared by two datasets).

Beside the exact overlap (the same NHS linkage token), a report over datasets with identity
fields adds the overlap that probabilistic linkage finds: the records of every dataset under
the current linkage key are clustered as a probabilistic project's extract would cluster them
(:mod:`pseudogate.gateway.clusters`, default threshold), and each cluster is one person.
"""

from __future__ import annotations

import itertools
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from pseudogate.core.columns import as_text
from pseudogate.core.encoding import ENCODING_NAME
from pseudogate.core.keyring import Keyring, Purpose
from pseudogate.core.names import DEFAULT_DOMAIN
from pseudogate.gateway.clusters import representative_links
from pseudogate.linkage.engine import DEFAULT_THRESHOLD
from pseudogate.store.catalog import Catalog, VersionRecord
from pseudogate.store.datasets import DatasetFiles

__all__ = ["linkage_report"]


def linkage_report(
    catalog: Catalog,
    files: DatasetFiles,
    *,
    domain: str = DEFAULT_DOMAIN,
    keyring: Keyring | None = None,
) -> dict[str, Any]:
    """``{"datasets": {name: {"version", "records", "people"}}, "overlap": {"a|b": people}}``.

    People are the distinct tokens of each latest version's one column tokenised under
    ``domain``; a dataset without exactly one such column has ``people`` null and no overlaps.
    An empty token (a record stored without an NHS number, linked by identity fields) is no
    person here: it is neither counted nor shared.

    With a ``keyring`` and at least one dataset with identity fields, the report adds
    ``"probabilistic"`` (:func:`probabilistic_overlap`).
    """
    datasets: dict[str, dict[str, Any]] = {}
    people: dict[str, pa.Array] = {}
    latest: list[VersionRecord] = []
    for name in catalog.dataset_names():
        version = catalog.latest_version(name)
        if version is None:
            continue
        latest.append(version)
        links = version.token_columns(domain)
        entry: dict[str, Any] = {"version": version.version, "records": version.rows, "people": None}
        if len(links) == 1:
            column = as_text(files.read(version.file, columns=links).column(links[0]))
            distinct = pc.unique(column)
            distinct = pc.filter(distinct, pc.not_equal(distinct, ""))
            people[name] = distinct
            entry["people"] = len(distinct)
        datasets[name] = entry
    report: dict[str, Any] = {"datasets": datasets, "overlap": _overlaps(people)}
    if keyring is not None and any(v.encoding_column for v in latest):
        report["probabilistic"] = probabilistic_overlap(
            latest, files=files, keyring=keyring, domain=domain
        )
    return report


def probabilistic_overlap(
    versions: list[VersionRecord],
    *,
    files: DatasetFiles,
    keyring: Keyring,
    domain: str = DEFAULT_DOMAIN,
    threshold: float = DEFAULT_THRESHOLD,
) -> dict[str, Any]:
    """People per dataset and people shared by each pair, when records are clustered by
    probabilistic linkage (identity encodings and NHS tokens as evidence).

    ``{"encoding", "threshold", "datasets": {name: {"people"}}, "overlap": {"a|b": people},
    "not_linked": {name: reason}}``. Taken part: every latest version under the current linkage
    key with identity fields or exactly one column under ``domain``. Encodings made under
    another key cannot be compared, so such a dataset is listed under ``not_linked``.
    """
    key_id = keyring.primary(Purpose.LINKAGE).id
    taking: list[VersionRecord] = []
    link_columns: list[str | None] = []
    not_linked: dict[str, str] = {}
    for v in versions:
        links = v.token_columns(domain)
        if v.linkage_key_id != key_id:
            not_linked[v.dataset] = (f"made under linkage key {v.linkage_key_id!r}, not the "
                                     f"current {key_id!r}: resubmit to link it")
        elif v.encoding_column is None and len(links) != 1:
            not_linked[v.dataset] = (f"no identity fields and {len(links)} columns tokenised "
                                     f"under domain {domain!r}")
        else:
            taking.append(v)
            link_columns.append(links[0] if len(links) == 1 else None)
    result: dict[str, Any] = {"encoding": ENCODING_NAME, "threshold": threshold,
                              "datasets": {}, "overlap": {}, "not_linked": not_linked}
    if not taking:
        return result
    clustered = representative_links(taking, link_columns, files=files, keyring=keyring,
                                     threshold=threshold)
    people = {v.dataset: pc.unique(reps) for v, reps in zip(taking, clustered.links, strict=True)}
    result["datasets"] = {name: {"people": len(p)} for name, p in sorted(people.items())}
    result["overlap"] = _overlaps(people)
    return result


def _overlaps(people: dict[str, pa.Array]) -> dict[str, int]:
    """People shared by each pair of datasets (``"a|b"``, names sorted), from each dataset's
    distinct person tokens."""
    overlap: dict[str, int] = {}
    for a, b in itertools.combinations(sorted(people), 2):
        shared = pc.sum(pc.is_in(people[a], value_set=people[b])).as_py() or 0
        overlap[f"{a}|{b}"] = int(shared)
    return overlap
