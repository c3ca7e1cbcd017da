"""The tamper-evident audit log: events, hash chain, signed checkpoints, offline verification.

See docs/audit.md for the exact construction and docs/auditors.md for the auditor's workflow.
"""

from pseudogate.audit.chain import (
    CHECKPOINT_FIELDS,
    GENESIS_HASH,
    canonical_bytes,
    checkpoint_signing_bytes,
    make_checkpoint,
    next_hash,
    verify_checkpoint_signature,
)
from pseudogate.audit.events import (
    EVENT_FIELDS,
    STATUS_NAMES,
    AuditEvent,
    build_event,
    prepare_event,
    rfc3339,
    safe_name,
    utc_now,
    validate_event,
)
from pseudogate.audit.log import AUDIT_DB_NAME, AuditLog
from pseudogate.audit.verify import (
    AuditVerificationFailed,
    VerificationReport,
    verify_database,
    verify_export,
)

__all__ = [
    "AUDIT_DB_NAME",
    "CHECKPOINT_FIELDS",
    "EVENT_FIELDS",
    "GENESIS_HASH",
    "STATUS_NAMES",
    "AuditEvent",
    "AuditLog",
    "AuditVerificationFailed",
    "VerificationReport",
    "build_event",
    "canonical_bytes",
    "checkpoint_signing_bytes",
    "make_checkpoint",
    "next_hash",
    "prepare_event",
    "rfc3339",
    "safe_name",
    "utc_now",
    "validate_event",
    "verify_checkpoint_signature",
    "verify_database",
    "verify_export",
]
