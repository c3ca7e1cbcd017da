"""Per-organisation storage quotas: one provider cannot fill the gateway's disk for everyone.

An organisation's usage is the size on disk of the version files it has committed. A
submission is checked when it is prepared, with the size of its finished temporary file, so a
refused submission is never audited as stored nor published. Submissions of one organisation
prepared at the same moment are each checked against the usage committed so far: together
they may overshoot the quota by at most what that organisation's concurrent streams carry.
"""

from __future__ import annotations

from pseudogate.core.errors import ConfigurationError, ResourceExhausted
from pseudogate.store.catalog import Catalog
from pseudogate.store.datasets import DatasetFiles

__all__ = ["StorageQuota"]


class StorageQuota:
    """At most ``limit`` bytes of stored Parquet per organisation."""

    def __init__(self, *, limit: int, catalog: Catalog, files: DatasetFiles) -> None:
        if limit <= 0:
            raise ConfigurationError("a storage quota must be a positive number of bytes")
        self.limit = limit
        self._catalog = catalog
        self._files = files

    def used(self, organisation: str) -> int:
        """Bytes of the organisation's committed version files."""
        with self._catalog.read() as db:
            rows = db.execute("SELECT file FROM versions WHERE organisation = ?", (organisation,))
            names = [str(r[0]) for r in rows]
        total = 0
        for name in names:
            try:
                total += self._files.path(name).stat().st_size
            except FileNotFoundError:
                continue  # not ours to judge here: a missing file is found by extracts
        return total

    def check(self, organisation: str, adding: int) -> None:
        """Refuse (``ResourceExhausted``) a submission of ``adding`` bytes beyond the quota."""
        used = self.used(organisation)
        if used + adding > self.limit:
            raise ResourceExhausted(
                f"storage quota exceeded: organisation {organisation!r} stores {used} bytes and "
                f"this submission needs {adding} more; its quota is {self.limit} bytes. Nothing "
                "was stored: ask the gateway operator to raise the quota"
            )
