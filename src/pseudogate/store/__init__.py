"""The linked pseudonymised store: submissions, dataset versions, projects, opt-outs, extracts.

Adapters use :class:`Store` (``Store.open(data_dir, keyring=..., policies=...)``) and the
policy folder loader :func:`load_policy_registry`. Nothing here imports gRPC or the CLI.
"""

from pseudogate.store.catalog import ColumnInfo, OptOutSnapshot, VersionRecord
from pseudogate.store.content_hash import table_content_sha256
from pseudogate.store.extract import Extract, optouts_shown
from pseudogate.store.ingestion import (
    DATASET_NAME_RE,
    MAX_MESSAGE_BYTES,
    Submission,
    SubmissionResult,
    SubmissionSummary,
)
from pseudogate.store.projects import ProjectRecord
from pseudogate.store.registry import load_policy_registry
from pseudogate.store.store import DEFAULT_DOMAIN, LOCK_FILE, Store

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
