"""One root exception type for the domain core, with a transport-neutral error code.

Adapters map ``ErrorCode`` to their own vocabulary in one place (``service/errors.py`` for gRPC,
the CLI's exit status). Messages never contain identifier values: they point to rows, columns,
files and reason codes only.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import logging
import os
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

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
    "StorageFull",
    "Unavailable",
    "VerificationFailed",
    "is_storage_full",
    "shown",
    "storage_full",
    "translating_storage_full",
]

log = logging.getLogger("pseudogate.storage")


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
    """Root of every error the domain core raises on purpose.

    Messages are built from rows, columns, reasons and names; as a last line of defence any
    NHS number, postcode or email address in one is replaced by "(withheld)" here, so that a
    name a caller typed (a project "943 476 5919") never travels back in an error.
    """

    code: ErrorCode = ErrorCode.INTERNAL

    def __init__(self, *args: object) -> None:
        from pseudogate.core.identifiers import redact  # lazily: identifiers imports this module

        super().__init__(*(redact(a) if isinstance(a, str) else a for a in args))


_SHOWABLE = re.compile(r"[A-Za-z0-9_.:/-]{1,64}")


def shown(text: object) -> str:
    """``text`` quoted for a message if it may be shown, else "(withheld)".

    For names callers type (policy keys and values, dataset, project, policy names): shown
    only if it is short, has no spaces or '@' (a person's name or an email address in the
    wrong field) and is not a direct identifier; otherwise the message says where, not what.
    """
    from pseudogate.core.identifiers import WITHHELD, contains_identifier

    if isinstance(text, str) and _SHOWABLE.fullmatch(text) and not contains_identifier(text):
        return repr(text)
    return WITHHELD


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


class StorageFull(ResourceExhausted):
    """A write failed for lack of space (disk full or quota). ``path`` is for the operator's
    log only: callers are told "storage full", never where the gateway keeps its files."""

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__("storage full: no space left to write; nothing was stored (the log "
                         "names the full path)")


_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
#: pyarrow raises OSError without an errno; its text then quotes the C library's strerror.
_FULL_TEXTS = tuple(os.strerror(e) for e in sorted(_FULL_ERRNOS))


def is_storage_full(exc: BaseException) -> bool:
    """Whether ``exc`` says there is no space left: ENOSPC/EDQUOT, or SQLite's SQLITE_FULL."""
    if isinstance(exc, StorageFull):
        return True
    if isinstance(exc, OSError):
        return exc.errno in _FULL_ERRNOS or any(t in str(exc) for t in _FULL_TEXTS)
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        return code == sqlite3.SQLITE_FULL or "database or disk is full" in str(exc)
    return False


@contextlib.contextmanager
def translating_storage_full(path: str | os.PathLike[str]) -> Iterator[None]:
    """Turn a lack of space while writing ``path`` into :class:`StorageFull`, logging the path.

    ``path`` is a data-directory path (a catalog, a temporary file); the log line says which
    file system is full so that the operator can act (a path holding an identifier is logged
    as its nearest folder that does not).
    """
    try:
        yield
    except StorageFull:
        raise
    except (OSError, sqlite3.Error) as exc:
        if not is_storage_full(exc):
            raise
        raise storage_full(path, exc) from None


def storage_full(path: str | os.PathLike[str], exc: BaseException) -> StorageFull:
    """Log which path is full (and why, never a value) and return the error to raise."""
    from pseudogate.core.identifiers import contains_identifier  # lazily: it imports this module

    where = Path(os.fspath(path))
    while contains_identifier(str(where)) and where != where.parent:
        where = where.parent  # a dataset folder named like a postcode, say: log its parent
    log.error("storage full: cannot write %s (%s)", where, _full_reason(exc))
    return StorageFull(str(where))


def _full_reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS:
        return os.strerror(exc.errno)
    if isinstance(exc, sqlite3.Error):
        return "SQLite: database or disk is full"
    return next((t for t in _FULL_TEXTS if t in str(exc)), "no space left")


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

    def __init__(self, errors: list[RowError], *, context: str = "input", limit: int = 20,
                 total: int | None = None) -> None:
        """``total``: how many errors there are when ``errors`` holds only the first ones
        (a partitioned job gathers only the first few from each partition)."""
        self.errors = errors
        count = len(errors) if total is None else total
        shown = "; ".join(e.describe() for e in errors[:limit])
        more = f"; and {count - limit} more" if count > limit else ""
        super().__init__(f"{count} invalid value(s) in {context}: {shown}{more}")
