"""One root exception type for the domain core, with a transport-neutral error code.

Adapters map ``ErrorCode`` to their own vocabulary in one place (``service/errors.py`` for gRPC,
the CLI's exit status). Messages never contain identifier values: they point to rows, columns,
files and reason codes only.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = [
    "AlreadyExists",
    "ConfigurationError",
    "ErrorCode",
    "FailedPrecondition",
    "InvalidInput",
    "NotFound",
    "PermissionDenied",
    "PseudogateError",
    "ResourceExhausted",
    "RowError",
    "RowErrors",
    "Unavailable",
    "VerificationFailed",
]


class ErrorCode(enum.Enum):
    """What kind of failure, named like the gRPC codes they map to."""

    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    NOT_FOUND = "NOT_FOUND"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    FAILED_PRECONDITION = "FAILED_PRECONDITION"
    RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"
    DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"
    UNAVAILABLE = "UNAVAILABLE"
    INTERNAL = "INTERNAL"


class PseudogateError(Exception):
    """Root of every error the domain core raises on purpose."""

    code: ErrorCode = ErrorCode.INTERNAL


class InvalidInput(PseudogateError):
    code = ErrorCode.INVALID_ARGUMENT


class ConfigurationError(InvalidInput):
    """A keyring, policy or config file that is malformed or unsafe."""


class NotFound(PseudogateError):
    code = ErrorCode.NOT_FOUND


class AlreadyExists(PseudogateError):
    code = ErrorCode.ALREADY_EXISTS


class PermissionDenied(PseudogateError):
    code = ErrorCode.PERMISSION_DENIED


class FailedPrecondition(PseudogateError):
    code = ErrorCode.FAILED_PRECONDITION


class ResourceExhausted(PseudogateError):
    code = ErrorCode.RESOURCE_EXHAUSTED


class Unavailable(PseudogateError):
    code = ErrorCode.UNAVAILABLE


class VerificationFailed(PseudogateError):
    """A signature, hash or chain that does not verify. Raised, never returned as False."""

    code = ErrorCode.INVALID_ARGUMENT


@dataclass(frozen=True, slots=True)
class RowError:
    """An invalid value, located by row (and column) and a reason code; never the value."""

    row: int
    reason: str
    column: str = ""

    def describe(self) -> str:
        where = f"row {self.row}" + (f", column {self.column!r}" if self.column else "")
        return f"{where}: {self.reason}"


class RowErrors(InvalidInput):
    """Some rows are invalid; the whole operation is refused."""

    def __init__(self, errors: list[RowError], *, context: str = "input", limit: int = 20) -> None:
        self.errors = errors
        shown = "; ".join(e.describe() for e in errors[:limit])
        more = f"; and {len(errors) - limit} more" if len(errors) > limit else ""
        super().__init__(f"{len(errors)} invalid value(s) in {context}: {shown}{more}")
