"""Persistence only: the SQLite catalog and the Parquet dataset version files.

The use cases built on them (submissions, projects, opt-outs, extracts) live in
:mod:`pseudogate.gateway`.
"""

from pseudogate.store.catalog import (
    Catalog,
    ColumnInfo,
    OptOutSnapshot,
    ProjectRow,
    VersionRecord,
)
from pseudogate.store.datasets import DatasetFiles

__all__ = [
    "Catalog",
    "ColumnInfo",
    "DatasetFiles",
    "OptOutSnapshot",
    "ProjectRow",
    "VersionRecord",
]
