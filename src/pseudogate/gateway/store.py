"""The store: the one object adapters talk to for submissions, projects, opt-outs, extracts.

It owns a data directory (created if missing, mode 0700) holding the SQLite catalog and the
Parquet dataset versions, and knows the registered ingestion policies and the keyring. It has
no transport in it: the gRPC servicers and the CLI convert requests and call these methods.
"""

from __future__ import annotations

import fcntl
import logging
import os
import weakref
from collections.abc import Mapping, Sequence
from datetime import date
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import pyarrow as pa

from pseudogate.core.clock import Clock, rfc3339, today_utc, utc_now
from pseudogate.core.encoding import ENCODING_NAME
from pseudogate.core.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidInput,
    NotFound,
    PermissionDenied,
    Unavailable,
    shown,
)
from pseudogate.core.fileio import make_private_dir, make_private_file
from pseudogate.core.keyring import Keyring, Purpose
from pseudogate.core.linkage_method import Linkage, parse_linkage
from pseudogate.core.names import (
    DEFAULT_DOMAIN,
    check_dataset_name,
    check_domain,
    check_organisation,
    check_project_id,
)
from pseudogate.core.policy import Policy, parse_policy
from pseudogate.core.rights import RightsSettings
from pseudogate.core.statements import ProjectStatements
from pseudogate.gateway.changes import (
    ExtractRelease,
    PreparedOptOuts,
    PreparedProject,
    Recorder,
    unaudited,
)
from pseudogate.gateway.clusters import check_same_linkage_key
from pseudogate.gateway.extract import Anonymiser, Extract, ExtractInputs, build_extract
from pseudogate.gateway.ingestion import Submission
from pseudogate.gateway.join import join_layout
from pseudogate.gateway.linkage import linkage_report
from pseudogate.gateway.optouts import check_not_empty, optout_tokens
from pseudogate.gateway.projects import ProjectRecord, check_extract_policy, parse_expiry
from pseudogate.gateway.quotas import StorageQuota
from pseudogate.gateway.rights import Rights
from pseudogate.linkage.engine import DEFAULT_THRESHOLD
from pseudogate.store.catalog import Catalog, OptOutSnapshot, ProjectRow, VersionRecord
from pseudogate.store.datasets import DatasetFiles, StartupSweep

__all__ = ["DEFAULT_DOMAIN", "LOCK_FILE", "Store", "project_linkage", "project_policy"]

#: Held (flock) while a store is open: one gateway per data directory, since opening removes
#: unfinished submissions and quarantines unlisted files, which could be another process's work.
LOCK_FILE = "store.lock"
log = logging.getLogger("pseudogate.store")  # the name operators filter on, kept across moves
#: One message for both cases, so that a caller cannot learn which projects exist.
_PROJECT_DENIED = "project {} does not exist or is not yours"


def _default_anonymiser(*args: Any, **kwargs: Any) -> Any:
    from pseudogate.anonymity import anonymise

    return anonymise(*args, **kwargs)


class Store:
    """The embedded linked store. Build it with :meth:`open`."""

    def __init__(
        self,
        *,
        data_dir: Path,
        keyring: Keyring,
        policies: Mapping[str, Policy],
        clock: Clock,
        anonymiser: Anonymiser,
        storage_quota_per_org: int | None = None,
        rights: RightsSettings | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.keyring = keyring
        self.policies = dict(policies)
        self._clock = clock
        self._anonymiser = anonymiser
        self._lock_fd: int | None = _lock(data_dir / LOCK_FILE)
        self._release = weakref.finalize(self, os.close, self._lock_fd)  # also when collected
        try:
            self.files = DatasetFiles(data_dir)
            self.catalog = self._open_catalog(data_dir)
            _check_keys(self.catalog, keyring)
            self.sweep = self._sweep()
            self.quota = (
                None
                if storage_quota_per_org is None
                else StorageQuota(limit=storage_quota_per_org, catalog=self.catalog, files=self.files)
            )
            #: People's rights requests (subject access, re-identification): gateway/rights.py.
            self.rights = Rights(
                catalog=self.catalog, files=self.files, keyring=keyring, clock=clock,
                settings=rights,
            )
        except BaseException:
            self.close()
            raise

    def _open_catalog(self, data_dir: Path) -> Catalog:
        """The catalog; refuses to make a new, empty one beside dataset files it would orphan."""
        path = data_dir / Catalog.FILE_NAME
        if not path.exists():
            count = self.files.dataset_file_count()
            if count:
                raise FailedPrecondition(
                    f"data directory {data_dir} holds {count} dataset file(s) under datasets/ "
                    f"but no {Catalog.FILE_NAME}; no file was moved or deleted. Restore "
                    f"{Catalog.FILE_NAME} from the backup taken with these files, or, to start "
                    f"with an empty store on purpose, move {self.files.datasets_dir} elsewhere "
                    "first"
                )
        make_private_file(path)  # 0600 whatever the umask; SQLite's journal copies the mode
        return Catalog(data_dir)

    def _sweep(self) -> StartupSweep:
        """Tidy files the catalog does not list (moved, never deleted) and say so loudly."""
        known = self.catalog.version_files()
        missing = self.files.missing(known)
        if missing:
            log.warning(
                "the catalog lists %d version file(s) that are not on disk (%s); extracts that "
                "need them will fail until they are restored",
                len(missing),
                ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else ""),
            )
        sweep = self.files.sweep(known, now=self._clock())
        if sweep.staging_removed:
            log.info("removed %d unfinished submission file(s)", sweep.staging_removed)
        if sweep.quarantined:
            log.warning("%s", sweep.describe())
        return sweep

    def close(self) -> None:
        """Release the data directory (another store may open it afterwards)."""
        if self._lock_fd is not None:
            self._release()
            self._lock_fd = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @classmethod
    def open(
        cls,
        data_dir: str | Path,
        *,
        keyring: Keyring,
        policies: Mapping[str, Policy],
        clock: Clock = utc_now,
        anonymiser: Anonymiser | None = None,
        storage_quota_per_org: int | None = None,
        rights: RightsSettings | None = None,
    ) -> Store:
        """Open (creating if missing, mode 0700) a data directory.

        Refuses dataset files without a catalog, and catalog key ids missing from ``keyring``;
        removes the store's own unfinished submissions and quarantines files the catalog does
        not list (see :class:`StartupSweep`, kept as ``store.sweep``).
        """
        keyring.require_purposes(Purpose.LINKAGE, Purpose.PROJECT, Purpose.SIGNING)
        root = make_private_dir(data_dir)
        return cls(
            data_dir=root,
            keyring=keyring,
            policies=policies,
            clock=clock,
            anonymiser=anonymiser or _default_anonymiser,
            storage_quota_per_org=storage_quota_per_org,
            rights=rights,
        )

    # -- policies -------------------------------------------------------------------------------

    def policy(self, name: str) -> Policy:
        """A registered ingestion policy by name."""
        try:
            return self.policies[name]
        except KeyError:
            known = ", ".join(sorted(self.policies)) or "none"
            raise NotFound(f"no ingestion policy named {shown(name)} (registered: {known})") from None

    def project_policy(self, project_id: str, *, organisation: str | None = None) -> Policy:
        """The extract policy a project is bound to (same refusal as extracts for others)."""
        row = self._project_row(project_id, organisation=organisation)
        return project_policy(row)

    # -- submissions ----------------------------------------------------------------------------

    def begin_submission(self, *, dataset: str, policy_name: str, organisation: str) -> Submission:
        """Start a submission; checks the name, the policy and who owns the dataset."""
        check_dataset_name(dataset)
        check_organisation(organisation, field="the submitting organisation")
        if policy_name not in self.policies:
            known = ", ".join(sorted(self.policies)) or "none"
            raise InvalidInput(
                f"no ingestion policy named {shown(policy_name)} (registered: {known})"
            )
        owner = self.catalog.dataset_owner(dataset)
        if owner is not None and owner != organisation:
            raise PermissionDenied(f"dataset {dataset!r} belongs to another organisation")
        return Submission(
            dataset=dataset,
            organisation=organisation,
            policy_name=policy_name,
            policy=self.policies[policy_name],
            keyring=self.keyring,
            catalog=self.catalog,
            files=self.files,
            clock=self._clock,
            quota=self.quota,
        )

    def versions(self, dataset: str) -> list[VersionRecord]:
        return self.catalog.versions(dataset)

    def read_version(self, dataset: str, version: int | None = None) -> pa.Table:
        """A stored version as an Arrow table (the latest by default)."""
        records = self.catalog.versions(dataset)
        chosen = [r for r in records if version is None or r.version == version]
        if not chosen:
            raise NotFound(f"dataset {dataset!r} has no version {version or ''}".rstrip())
        return self.files.read(chosen[-1].file)

    # -- projects -------------------------------------------------------------------------------

    def prepare_project(
        self,
        *,
        project_id: str,
        researcher: str,
        datasets: Sequence[str],
        policy_text: str,
        policy_files: Mapping[str, bytes] | None = None,
        expires: date | str,
        domain: str = DEFAULT_DOMAIN,
        linkage: str = "",
        linkage_threshold: float | None = None,
        title: str,
        purpose: str,
        legal_basis: str,
        public_benefit: str,
    ) -> PreparedProject:
        """Check a project for registration; its policy must fit the datasets' latest schemas.

        ``linkage`` is "exact" (the default, also for "") or "probabilistic";
        ``linkage_threshold`` (probabilistic only; None or 0 for the default) is a match
        probability in (0, 1). ``title``, ``purpose``, ``legal_basis`` and ``public_benefit``
        are the project's public statements, all required (:mod:`pseudogate.core.statements`:
        published on the register, recorded in the creation's audit event). Nothing is stored
        until the returned change is committed (:mod:`.changes`)."""
        check_project_id(project_id)
        check_organisation(researcher, field="the researcher organisation")
        statements = ProjectStatements.checked(
            title=title, purpose=purpose, legal_basis=legal_basis, public_benefit=public_benefit
        )
        domain = check_domain(domain or DEFAULT_DOMAIN)
        method = parse_linkage(linkage, linkage_threshold, default_threshold=DEFAULT_THRESHOLD,
                               encoding=ENCODING_NAME)
        names = list(datasets)
        if not names:
            raise InvalidInput("a project needs at least one dataset")
        if len(set(names)) != len(names):
            raise InvalidInput("a project names each dataset once")
        for name in names:
            check_dataset_name(name)
        expiry = parse_expiry(expires)
        if expiry < self._today():
            raise InvalidInput(f"expiry date {expiry.isoformat()} is already past")
        if self.catalog.project(project_id) is not None:
            raise AlreadyExists(f"project {project_id!r} already exists")
        versions = self._latest_versions(names)
        layout = join_layout(versions, domain=domain, probabilistic=method.probabilistic)
        files = dict(policy_files or {})
        policy = parse_policy(policy_text, files=files, origin=f"for project {project_id!r}")
        check_extract_policy(policy, layout)
        row = ProjectRow(
            id=project_id,
            researcher=researcher,
            datasets=tuple(names),
            domain=domain,
            policy_text=policy_text,
            policy_files={k: bytes(v) for k, v in files.items()},
            policy_fingerprint=policy.fingerprint,
            project_key_id=self.keyring.primary(Purpose.PROJECT).id,
            expires=expiry.isoformat(),
            created_at=rfc3339(self._clock(), precision="seconds"),
            linkage=method.method.value,
            linkage_threshold=method.threshold,
            **statements.as_dict(),
        )
        return PreparedProject(self.catalog, row)

    def create_project(
        self,
        *,
        project_id: str,
        researcher: str,
        datasets: Sequence[str],
        policy_text: str,
        policy_files: Mapping[str, bytes] | None = None,
        expires: date | str,
        domain: str = DEFAULT_DOMAIN,
        linkage: str = "",
        linkage_threshold: float | None = None,
        title: str,
        purpose: str,
        legal_basis: str,
        public_benefit: str,
        record: Recorder = unaudited,
    ) -> ProjectRecord:
        """:meth:`prepare_project` then commit (``record`` writes the audit event first)."""
        prepared = self.prepare_project(
            project_id=project_id,
            researcher=researcher,
            datasets=datasets,
            policy_text=policy_text,
            policy_files=policy_files,
            expires=expires,
            domain=domain,
            linkage=linkage,
            linkage_threshold=linkage_threshold,
            title=title,
            purpose=purpose,
            legal_basis=legal_basis,
            public_benefit=public_benefit,
        )
        return ProjectRecord.from_row(prepared.commit(record=record))

    def project(self, project_id: str, *, organisation: str | None = None) -> ProjectRecord:
        return ProjectRecord.from_row(self._project_row(project_id, organisation=organisation))

    def _project_row(self, project_id: str, *, organisation: str | None) -> ProjectRow:
        row = self.catalog.project(project_id) if isinstance(project_id, str) else None
        if row is None or (organisation is not None and row.researcher != organisation):
            raise PermissionDenied(_PROJECT_DENIED.format(shown(project_id)))
        return row

    # -- opt-outs -------------------------------------------------------------------------------

    def prepare_optouts(
        self,
        nhs_numbers: Sequence[str],
        *,
        domain: str = DEFAULT_DOMAIN,
        allow_empty: bool = False,
    ) -> PreparedOptOuts:
        """Tokenise a complete new opt-out snapshot (tokens only); nothing is stored until the
        returned change is committed (:mod:`.changes`). An empty list is refused unless
        ``allow_empty``: it would clear every opt-out."""
        domain = check_domain(domain or DEFAULT_DOMAIN)
        check_not_empty(nhs_numbers, allow_empty=allow_empty)
        tokeniser = self.keyring.linkage_tokeniser(domain)
        tokens = optout_tokens(nhs_numbers, tokeniser=tokeniser)
        return PreparedOptOuts(
            self.catalog,
            domain=domain,
            tokens=tokens,
            linkage_key_id=tokeniser.key_id,
            created_at=rfc3339(self._clock(), precision="seconds"),
        )

    def import_optouts(
        self,
        nhs_numbers: Sequence[str],
        *,
        domain: str = DEFAULT_DOMAIN,
        allow_empty: bool = False,
        record: Recorder = unaudited,
    ) -> OptOutSnapshot:
        """:meth:`prepare_optouts` then commit; returns the snapshot's id and count."""
        prepared = self.prepare_optouts(nhs_numbers, domain=domain, allow_empty=allow_empty)
        return prepared.commit(record=record)

    def latest_optout_snapshot(self, domain: str = DEFAULT_DOMAIN) -> OptOutSnapshot | None:
        return self.catalog.latest_optout_snapshot(domain)

    # -- reports and extracts -------------------------------------------------------------------

    def linkage_report(self, *, domain: str = DEFAULT_DOMAIN) -> dict[str, Any]:
        """Counts only: records and people per dataset, people shared by each pair."""
        return linkage_report(self.catalog, self.files, domain=domain, keyring=self.keyring)

    def build_extract(
        self, project_id: str, *, organisation: str | None, today: date | None = None
    ) -> Extract:
        """The project's extract, complete and signed, before any of it is sent.

        ``organisation`` None means any caller (insecure mode); otherwise it must be the
        project's researcher. ``today`` (UTC) defaults to the store's clock.
        """
        row = self._project_row(project_id, organisation=organisation)
        today = today or self._today()
        if today > date.fromisoformat(row.expires):
            raise FailedPrecondition(
                f"project {project_id!r} expired on {row.expires}; extracts are no longer allowed"
            )
        versions = self._latest_versions(list(row.datasets))
        linkage = project_linkage(row)
        if linkage.probabilistic:
            check_same_linkage_key(versions)  # names the datasets (encodings cannot be mixed)
        linkage_keys = sorted({v.linkage_key_id for v in versions})
        if len(linkage_keys) != 1:
            raise FailedPrecondition(
                "the project's datasets were tokenised under different linkage keys "
                f"({', '.join(linkage_keys)}); resubmit them under the primary key"
            )
        snapshot = self.catalog.latest_optout_snapshot(row.domain)
        tokens = None
        if snapshot is not None:
            if snapshot.linkage_key_id != linkage_keys[0]:
                raise FailedPrecondition(
                    f"opt-out snapshot {snapshot.id} was tokenised under linkage key "
                    f"{snapshot.linkage_key_id} but the datasets under {linkage_keys[0]}; "
                    "import the opt-outs again"
                )
            tokens = pa.array(self.catalog.optout_tokens(snapshot.id), type=pa.string())
        inputs = ExtractInputs(
            project_id=row.id,
            domain=row.domain,
            versions=tuple(versions),
            policy=project_policy(row),
            project_tokeniser=self.keyring.project_tokeniser(row.id, key_id=row.project_key_id),
            linkage_key_id=linkage_keys[0],
            optout_snapshot=snapshot,
            optout_tokens=tokens,
            created_at=rfc3339(self._clock(), precision="seconds"),
            linkage=linkage,
        )
        return build_extract(
            inputs, files=self.files, keyring=self.keyring, anonymiser=self._anonymiser
        )

    def prepare_extract(
        self, project_id: str, *, organisation: str | None, today: date | None = None
    ) -> ExtractRelease:
        """:meth:`build_extract`, as a change to release: audited, then streamed."""
        return ExtractRelease(
            self.build_extract(project_id, organisation=organisation, today=today),
            catalog=self.catalog,
        )

    # -- helpers --------------------------------------------------------------------------------

    def _today(self) -> date:
        return today_utc(self._clock)

    def _latest_versions(self, names: Sequence[str]) -> list[VersionRecord]:
        versions: list[VersionRecord] = []
        for name in names:
            version = self.catalog.latest_version(name)
            if version is None:
                raise FailedPrecondition(f"dataset {name!r} has no submitted version")
            versions.append(version)
        return versions


def _lock(path: Path) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.fchmod(fd, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise Unavailable(
            f"data directory {path.parent} is in use by another gateway (lock {path.name})"
        ) from None
    return fd


def _check_keys(catalog: Catalog, keyring: Keyring) -> None:
    """Refuse a keyring that lacks a key the catalog's records were made with (ids only)."""
    present = {info.id for info in keyring.infos()}
    missing = {k: uses for k, uses in catalog.referenced_key_ids().items() if k not in present}
    if missing:
        listed = "; ".join(
            f"{key_id} ({', '.join(f'{n} {what}' for what, n in sorted(uses.items()))})"
            for key_id, uses in sorted(missing.items())
        )
        where = f"keyring {keyring.source}" if keyring.source else "the keyring"
        raise FailedPrecondition(
            f"the catalog uses {len(missing)} key(s) missing from {where}: {listed}. Start with "
            "the keyring these records were made with, or restore those keys into it (keys are "
            "never removed from a keyring: see docs/keys.md); no file was moved or deleted"
        )


def project_linkage(row: ProjectRow) -> Linkage:
    """The project's stored linkage method (projects made before methods existed: exact)."""
    return parse_linkage(row.linkage, row.linkage_threshold,
                         default_threshold=DEFAULT_THRESHOLD, encoding=ENCODING_NAME)


def project_policy(row: ProjectRow) -> Policy:
    return parse_policy(row.policy_text, files=row.policy_files, origin=f"for project {row.id!r}")
