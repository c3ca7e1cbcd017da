"""What the register publishes, read from a data directory: names, dates, shown counts, policies,
signed manifests, public keys and the latest audit checkpoint. Never a token or a row.

Reading takes no lock and writes nothing the gateway relies on, so a register can be built
beside a running gateway. Every count of people or records is disclosure-controlled here
(:func:`~pseudogate.register.disclosure.shown_count`): nothing after this module sees an exact
one.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from pseudogate.audit import AUDIT_DB_NAME
from pseudogate.audit.chain import verify_checkpoint_signature
from pseudogate.core.errors import FailedPrecondition, VerificationFailed
from pseudogate.core.manifest import Manifest, load_public_key_pem, verify_manifest_signature
from pseudogate.core.policy import Policy
from pseudogate.core.statements import STATEMENT_FIELDS
from pseudogate.gateway.store import project_linkage, project_policy
from pseudogate.register.disclosure import shown_count
from pseudogate.register.policy_view import PolicyRow, policy_rows
from pseudogate.store.catalog import Catalog, ProjectRow

__all__ = [
    "MANIFEST_NOT_KEPT",
    "NOT_RECORDED",
    "PUBLIC_PROJECT_FIELDS",
    "Checkpoint",
    "DatasetFacts",
    "EarlierRelease",
    "OptOutFacts",
    "ProjectFacts",
    "ProviderFacts",
    "PublicKey",
    "RegisterFacts",
    "ReleaseFacts",
    "VersionFacts",
    "read_facts",
]

#: What the register shows for a project field that was never recorded.
NOT_RECORDED = "not recorded"
#: The public statements of a project (core/statements.py); None for a project created before
#: they were required.
PUBLIC_PROJECT_FIELDS: tuple[str, ...] = STATEMENT_FIELDS


@dataclass(frozen=True)
class PublicKey:
    """A signing key's public half, as published."""

    key_id: str
    status: str
    created: str
    pem: str

    @property
    def spki_sha256(self) -> str:
        """SHA-256 (lowercase hex) of the key's DER SubjectPublicKeyInfo bytes."""
        der = load_public_key_pem(self.pem).public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return hashlib.sha256(der).hexdigest()

    @property
    def spki_base64(self) -> str:
        """The DER SubjectPublicKeyInfo in base64 (what the browser imports)."""
        body = "".join(line for line in self.pem.splitlines() if "-----" not in line)
        return base64.b64encode(base64.b64decode(body)).decode("ascii")


@dataclass(frozen=True)
class VersionFacts:
    version: int
    created_at: str
    records: int | str  # shown


@dataclass(frozen=True)
class DatasetFacts:
    name: str
    created_at: str
    versions: tuple[VersionFacts, ...]

    @property
    def latest(self) -> VersionFacts | None:
        return self.versions[-1] if self.versions else None


@dataclass(frozen=True)
class ProviderFacts:
    organisation: str
    datasets: tuple[DatasetFacts, ...]


@dataclass(frozen=True)
class ReleaseFacts:
    """One released extract: its published manifest and the shown figures."""

    id: int
    project: str
    created_at: str
    manifest_json: str  # exactly as the gateway sent it
    manifest: Manifest
    rows: int | str  # shown
    people: int | str  # shown
    suppressed: int | str  # shown
    optouts_removed: int | str  # shown

    @property
    def month(self) -> str:
        return self.created_at[:7]


#: What the register says of a release whose manifest the store did not keep.
MANIFEST_NOT_KEPT = "manifest not kept (released before the register)"
#: The audit method of an extract.
_EXTRACT_METHOD = "/pseudogate.v1.ExtractService/CreateExtract"


@dataclass(frozen=True)
class EarlierRelease:
    """A release made before the store kept manifests, known from its audit event only.

    There is no manifest to publish or verify: the register shows the date, the project and
    the rows the event recorded (shown; None when the event did not record them).
    """

    audit_seq: int
    project: str | None  # None: the event recorded no project name
    created_at: str  # the audit event's time
    rows: int | str | None  # shown

    @property
    def month(self) -> str:
        return self.created_at[:7]

    @property
    def anchor(self) -> str:
        return f"earlier-release-{self.audit_seq}"


@dataclass(frozen=True)
class ProjectFacts:
    id: str
    researcher: str
    datasets: tuple[str, ...]
    domain: str
    expires: str
    created_at: str
    status: str  # "active" | "expired"
    statements: Mapping[str, str | None]  # PUBLIC_PROJECT_FIELDS; None: not recorded
    policy_text: str
    policy_fingerprint: str
    policy_files: tuple[str, ...]
    policy: Policy
    rows: tuple[PolicyRow, ...]
    releases: tuple[int, ...]  # release ids
    people: int | str  # shown: people covered by the project's latest release
    earlier_releases: tuple[EarlierRelease, ...] = ()  # made before manifests were kept
    linkage: Mapping[str, object] | None = None  # as the manifests state it; None: exact

    @property
    def linkage_text(self) -> str:
        """How the project's records are linked into people, in plain words."""
        if not self.linkage or self.linkage.get("method") != "probabilistic":
            return "by NHS number: records are one person when they carry the same NHS number"
        return (
            "by NHS number, and by names, dates of birth and addresses compared only as keyed, "
            f"sealed encodings ({self.linkage.get('encoding')}, match probability at least "
            f"{self.linkage.get('threshold')}): records without an NHS number can be linked too"
        )

    @property
    def title(self) -> str:
        return self.statements.get("title") or self.id


@dataclass(frozen=True)
class OptOutFacts:
    id: int
    domain: str
    created_at: str
    people: int | str  # shown


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    hash: str
    time: str
    signature: str

    def to_json(self) -> str:
        """The checkpoint as published: the four fields, compact JSON."""
        return json.dumps(
            {"seq": self.seq, "hash": self.hash, "time": self.time, "signature": self.signature},
            separators=(",", ":"),
        )


@dataclass(frozen=True)
class RegisterFacts:
    generated_at: str
    providers: tuple[ProviderFacts, ...]
    projects: tuple[ProjectFacts, ...]
    releases: tuple[ReleaseFacts, ...]
    optouts: tuple[OptOutFacts, ...]
    keys: tuple[PublicKey, ...]
    checkpoint: Checkpoint | None
    audit_events: int
    summary: Mapping[str, int | str] = field(default_factory=dict)
    earlier_releases: tuple[EarlierRelease, ...] = ()  # oldest first

    def releases_per_month(self) -> list[tuple[str, int]]:
        """(YYYY-MM, releases) for every month from the first release to the last (releases
        made before manifests were kept included)."""
        counts = Counter([r.month for r in self.releases]
                         + [r.month for r in self.earlier_releases])
        if not counts:
            return []
        first, last = min(counts), max(counts)
        out = []
        year, month = int(first[:4]), int(first[5:7])
        while f"{year:04d}-{month:02d}" <= last:
            key = f"{year:04d}-{month:02d}"
            out.append((key, counts.get(key, 0)))
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        return out


def read_facts(
    data_dir: Path, *, public_keys: Sequence[PublicKey], generated_at: str, today: date
) -> RegisterFacts:
    """Everything the register shows, from ``data_dir`` (its catalog and audit log).

    Every kept manifest must verify under one of ``public_keys``: a register that published a
    manifest its own keys cannot verify would mislead, so that is refused
    (:class:`FailedPrecondition`, naming the release and the key id).
    """
    if not (data_dir / Catalog.FILE_NAME).is_file():
        raise FailedPrecondition(f"{data_dir} holds no {Catalog.FILE_NAME}: not a data directory")
    catalog = Catalog(data_dir)
    providers = _providers(catalog)
    releases = tuple(_release(r.id, r.project, r.created_at, r.people, r.manifest_json)
                     for r in catalog.released_manifests())
    _check_signatures(releases, public_keys)
    earlier = _earlier_releases(data_dir / AUDIT_DB_NAME, releases)
    projects = tuple(_project(row, releases, earlier, today) for row in catalog.projects())
    optouts = tuple(
        OptOutFacts(s.id, s.domain, s.created_at, shown_count(s.count))
        for s in catalog.optout_snapshots()
    )
    checkpoint, events = _audit(data_dir / AUDIT_DB_NAME)
    if checkpoint is not None:
        _check_checkpoint(checkpoint, public_keys)
    latest_optouts = {s.domain: s for s in catalog.optout_snapshots()}  # by id: last wins
    records = sum(_exact_records(catalog, d.name) for p in providers for d in p.datasets)
    summary: dict[str, int | str] = {
        "organisations": len(providers),
        "datasets": sum(len(p.datasets) for p in providers),
        "projects": len(projects),
        "releases": len(releases) + len(earlier),
        "records": shown_count(records),
        "people_opted_out": shown_count(sum(s.count for s in latest_optouts.values())),
    }
    return RegisterFacts(
        generated_at=generated_at,
        providers=providers,
        projects=projects,
        releases=releases,
        optouts=optouts,
        keys=tuple(public_keys),
        checkpoint=checkpoint,
        audit_events=events,
        summary=summary,
        earlier_releases=earlier,
    )


def _exact_records(catalog: Catalog, dataset: str) -> int:
    latest = catalog.latest_version(dataset)
    return 0 if latest is None else latest.rows


def _providers(catalog: Catalog) -> tuple[ProviderFacts, ...]:
    by_owner: dict[str, list[DatasetFacts]] = {}
    for name, owner, created_at in catalog.datasets():
        versions = tuple(
            VersionFacts(v.version, v.created_at, shown_count(v.rows))
            for v in catalog.versions(name)
        )
        by_owner.setdefault(owner, []).append(DatasetFacts(name, created_at, versions))
    return tuple(ProviderFacts(o, tuple(ds)) for o, ds in sorted(by_owner.items()))


def _release(
    release_id: int, project: str, created_at: str, people: int, text: str
) -> ReleaseFacts:
    manifest = Manifest.from_json(text)
    removed = manifest.optouts_removed
    return ReleaseFacts(
        id=release_id,
        project=project,
        created_at=created_at,
        manifest_json=text,
        manifest=manifest,
        rows=shown_count(manifest.rows),
        people=shown_count(people),
        suppressed=shown_count(manifest.suppressed),
        optouts_removed=removed if isinstance(removed, str) else shown_count(removed),
    )


def _keys_by_id(public_keys: Sequence[PublicKey]) -> dict[str, PublicKey]:
    return {k.key_id: k for k in public_keys}


def _check_signatures(releases: Sequence[ReleaseFacts], public_keys: Sequence[PublicKey]) -> None:
    keys = _keys_by_id(public_keys)
    for release in releases:
        key_id = release.manifest.key_ids.signing
        if key_id not in keys:
            raise FailedPrecondition(
                f"release {release.id} was signed with key {key_id}, which the keyring given "
                "does not hold: build the register with the gateway's keyring"
            )
        try:
            verify_manifest_signature(release.manifest, load_public_key_pem(keys[key_id].pem))
        except VerificationFailed:
            raise FailedPrecondition(
                f"release {release.id}: its manifest does not verify under key {key_id}"
            ) from None


def _check_checkpoint(checkpoint: Checkpoint, public_keys: Sequence[PublicKey]) -> None:
    for key in public_keys:
        try:
            verify_checkpoint_signature(
                {"seq": checkpoint.seq, "hash": checkpoint.hash, "time": checkpoint.time,
                 "signature": checkpoint.signature},
                load_public_key_pem(key.pem),
            )
            return
        except VerificationFailed:
            continue
    raise FailedPrecondition(
        f"the latest audit checkpoint (seq {checkpoint.seq}) verifies under none of the keys "
        "given: build the register with the gateway's keyring"
    )


def _project(
    row: ProjectRow,
    releases: Sequence[ReleaseFacts],
    earlier: Sequence[EarlierRelease],
    today: date,
) -> ProjectFacts:
    policy = project_policy(row)
    own = [r for r in releases if r.project == row.id]
    statements = {name: getattr(row, name) or None for name in PUBLIC_PROJECT_FIELDS}
    return ProjectFacts(
        id=row.id,
        researcher=row.researcher,
        datasets=row.datasets,
        domain=row.domain,
        expires=row.expires,
        created_at=row.created_at,
        status="active" if date.fromisoformat(row.expires) >= today else "expired",
        statements=statements,
        policy_text=row.policy_text,
        policy_fingerprint=row.policy_fingerprint,
        policy_files=tuple(sorted(row.policy_files)),
        policy=policy,
        rows=policy_rows(policy),
        releases=tuple(r.id for r in own),
        people=own[-1].people if own else 0,
        earlier_releases=tuple(r for r in earlier if r.project == row.id),
        linkage=project_linkage(row).to_json_dict(),
    )





def _audit(path: Path) -> tuple[Checkpoint | None, int]:
    """The latest stored checkpoint and the number of events (0, None without a log)."""
    if not path.is_file():
        return None, 0
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30.0)
    try:
        events = db.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0]
        row = db.execute(
            "SELECT seq, hash, time, signature FROM checkpoints ORDER BY seq DESC LIMIT 1"
        ).fetchone()
    finally:
        db.close()
    checkpoint = None if row is None else Checkpoint(int(row[0]), row[1], row[2], row[3])
    return checkpoint, int(events)


def _earlier_releases(
    path: Path, releases: Sequence[ReleaseFacts]
) -> tuple[EarlierRelease, ...]:
    """Extracts the audit log records as released (``CreateExtract``, ``OK``) before the store
    kept their manifests.

    The log is read in order up to the event of the first kept manifest (its project and
    content hash, at or after its time), so a long log is read up to where the register began,
    not to its end. On the way, an event with the project and content hash of another kept
    manifest, at or after that manifest's time, is that manifest's (extracts running side by
    side may keep theirs in another order than their events). An extract event after the first
    kept manifest with no manifest of its own is not a release: the manifest is kept before the
    first row is sent, so that extract never left the gateway.
    """
    if not path.is_file():
        return ()
    kept: dict[tuple[object, object], list[str]] = {}
    for release in sorted(releases, key=lambda r: r.created_at):
        kept.setdefault((release.project, release.manifest.content_sha256), []).append(
            release.created_at[:19]
        )
    # The first kept: the earliest manifest (by second, then id: side by side, ids may follow
    # another order than the events).
    first = min(releases, key=lambda r: (r.created_at[:19], r.id), default=None)
    out = []
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30.0)
    try:
        cursor = db.execute(  # canonical JSON: the method is written exactly so
            "SELECT seq, body FROM events WHERE instr(body, ?) > 0 ORDER BY seq",
            (json.dumps({"method": _EXTRACT_METHOD}, separators=(",", ":"))[1:-1],),
        )
        for seq, body in cursor:
            event = json.loads(body)
            if event.get("method") != _EXTRACT_METHOD or event.get("status") != "OK":
                continue
            project = event.get("project")
            key: tuple[object, object] = (
                project, (event.get("details") or {}).get("content_sha256")
            )
            time = str(event.get("time", ""))
            if (
                first is not None
                and key == (first.project, first.manifest.content_sha256)
                and time[:19] >= first.created_at[:19]
            ):
                break  # the register began here
            times = kept.get(key)
            if times and time[:19] >= times[0]:
                times.pop(0)  # a kept manifest's own event
                continue
            rows_recorded = (event.get("counts") or {}).get("rows")
            out.append(EarlierRelease(
                audit_seq=int(seq),
                project=project if isinstance(project, str) else None,
                created_at=time,
                rows=shown_count(rows_recorded) if isinstance(rows_recorded, int)
                and not isinstance(rows_recorded, bool) and rows_recorded >= 0 else None,
            ))
    finally:
        db.close()
    return tuple(out)
