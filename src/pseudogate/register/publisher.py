"""Keep a register up to date beside a running gateway (``pseudogate serve --register-dir``).

:meth:`RegisterPublisher.refresh` reads a small state of the data directory (how many
versions, projects, released manifests, opt-out snapshots, the latest audit checkpoint, and
today's date for project statuses) and rebuilds the register, atomically, when it changed.
``serve`` calls it about once a second, so the register follows every submission, project
creation, extract, opt-out snapshot and audit checkpoint. Polling keeps the gateway's services
unaware of the register: nothing in the request path waits for a build.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from pathlib import Path

from pseudogate.audit import AUDIT_DB_NAME
from pseudogate.core.clock import Clock, today_utc, utc_now
from pseudogate.core.errors import PseudogateError
from pseudogate.register import build_register
from pseudogate.register.facts import PublicKey
from pseudogate.store.catalog import Catalog

__all__ = ["RegisterPublisher", "data_state"]

log = logging.getLogger("pseudogate.register")

_CATALOG_STATE = (
    "SELECT (SELECT COUNT(*) FROM versions), (SELECT COUNT(*) FROM projects),"
    " (SELECT COALESCE(MAX(id), 0) FROM released_manifests),"
    " (SELECT COALESCE(MAX(id), 0) FROM optout_snapshots)"
)


def _read(path: Path, sql: str) -> tuple[object, ...]:
    if not path.is_file():
        return ()
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30.0)
    try:
        return tuple(db.execute(sql).fetchone())
    except sqlite3.OperationalError:  # a table not created yet
        return ()
    finally:
        db.close()


def data_state(data_dir: Path) -> tuple[object, ...]:
    """What the register depends on, in a few numbers (it changes when the register would)."""
    return (
        _read(data_dir / Catalog.FILE_NAME, _CATALOG_STATE),
        _read(data_dir / AUDIT_DB_NAME, "SELECT COALESCE(MAX(seq), 0) FROM checkpoints"),
    )


class RegisterPublisher:
    """Rebuilds ``out`` from ``data_dir`` whenever :func:`data_state` (or the day) changes."""

    def __init__(
        self,
        *,
        data_dir: Path,
        out: Path,
        public_keys: Sequence[PublicKey],
        clock: Clock = utc_now,
    ) -> None:
        self.data_dir = data_dir
        self.out = out
        self.public_keys = list(public_keys)
        self.clock = clock
        self.builds = 0
        self._built_for: tuple[object, ...] | None = None

    def refresh(self) -> bool:
        """Rebuild if anything changed since the last build; True when it rebuilt.

        A failed build is logged and leaves the previous site in place; the next call tries
        again. It never raises: the register must not take the gateway down.
        """
        state = (data_state(self.data_dir), today_utc(self.clock).isoformat())
        if state == self._built_for:
            return False
        try:
            build_register(self.data_dir, self.out, public_keys=self.public_keys, clock=self.clock)
        except PseudogateError as exc:
            log.warning("the register in %s could not be rebuilt: %s", self.out, exc)
            return False
        except Exception:  # logged; the gateway keeps serving
            log.exception("the register in %s could not be rebuilt", self.out)
            return False
        self._built_for = state
        self.builds += 1
        log.info("register rebuilt in %s", self.out)
        return True
