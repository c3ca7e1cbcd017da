"""Use cases over the store: submissions, projects, opt-outs, linkage reports, extracts.

Adapters use :class:`Store` (``Store.open(data_dir, keyring=..., policies=...)``) and the
policy folder loader :func:`load_policy_registry`. Nothing here imports gRPC or the CLI.
"""

from pseudogate.core.content_hash import table_content_sha256
from pseudogate.gateway.extract import Extract, optouts_shown
from pseudogate.gateway.ingestion import (
    DATASET_NAME_RE,
    MAX_MESSAGE_BYTES,
    Submission,
    SubmissionResult,
    SubmissionSummary,
)
from pseudogate.gateway.projects import ProjectRecord
from pseudogate.gateway.registry import load_policy_registry
from pseudogate.gateway.store import DEFAULT_DOMAIN, LOCK_FILE, Store
from pseudogate.store.catalog import ColumnInfo, OptOutSnapshot, VersionRecord

__all__ = [
    "DATASET_NAME_RE",
    "DEFAULT_DOMAIN",
    "LOCK_FILE",
    "MAX_MESSAGE_BYTES",
    "ColumnInfo",
    "Extract",
    "OptOutSnapshot",
    "ProjectRecord",
    "Store",
    "Submission",
    "SubmissionResult",
    "SubmissionSummary",
    "VersionRecord",
    "load_policy_registry",
    "optouts_shown",
    "table_content_sha256",
]
