"""Project extracts: join, opt-outs, project tokens, anonymisation, signed manifest.

Everything is computed before anything is sent: :func:`build_extract` returns an
:class:`Extract` holding the final table and its signed manifest, and only then does an
adapter stream it. Linkage tokens never leave the gateway: every stored token column in an
extract (``person`` and any other tokenised column) is re-keyed to project tokens, so two
projects' extracts cannot be joined.

In a probabilistic project each dataset's link is first replaced by its records' clusters'
representative linkage tokens (gateway/clusters.py); everything after that is the same code.

On a Dask cluster (``serve --dask-scheduler``) an exact project's extract is not joined here:
the anonymiser (a :class:`JoiningAnonymiser`) is given an :class:`ExtractJoin`, the version
files to read and :func:`join_versions` itself, and its workers run it on buckets of people
(batch/join.py), so both paths share one join. A probabilistic project's representative tokens
are computed here, so its joined table is built here and handed to a
:class:`RekeyingAnonymiser`.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pseudogate.core.arrow_ipc import ipc_stream_bytes
from pseudogate.core.columns import as_text, rekey_tokens
from pseudogate.core.content_hash import table_content_sha256
from pseudogate.core.errors import FailedPrecondition, InvalidInput
from pseudogate.core.keyring import Keyring
from pseudogate.core.linkage_method import Linkage
from pseudogate.core.manifest import FEW_OPTOUTS, DatasetVersion, Manifest, ManifestKeyIds
from pseudogate.core.policy import Policy
from pseudogate.core.tokens import ShippedKey, Tokeniser
from pseudogate.gateway.clusters import representative_links
from pseudogate.gateway.join import PERSON, JoinLayout, join_layout, left_join
from pseudogate.store.catalog import OptOutSnapshot, VersionRecord
from pseudogate.store.datasets import DatasetFiles

__all__ = ["Anonymised", "Anonymiser", "Extract", "ExtractInputs", "ExtractJoin",
           "JoinedAnonymised", "JoiningAnonymiser", "ManifestFigures", "RekeyingAnonymiser",
           "VersionJoin", "VersionSource", "build_extract", "join_versions", "optouts_shown"]

class ManifestFigures(Protocol):
    """The report fields an extract's manifest records."""

    @property
    def k_achieved(self) -> int | None: ...

    @property
    def l_achieved(self) -> int | None: ...

    @property
    def suppressed(self) -> int: ...

    @property
    def loss(self) -> float: ...


class Anonymised(Protocol):
    """An anonymiser's result: the released table and its report (an object with the
    manifest's figures as attributes, such as ``AnonymisationReport``, or a mapping of them)."""

    @property
    def table(self) -> pd.DataFrame: ...

    @property
    def report(self) -> ManifestFigures | Mapping[str, Any]: ...


class Anonymiser(Protocol):
    """What builds an extract's released table: ``pseudogate.anonymity.anonymise`` or a
    stand-in with the same call."""

    def __call__(self, table: pd.DataFrame, policy: Policy, *, keyring: Keyring | None = None,
                 person_column: str | None = None) -> Anonymised: ...


@runtime_checkable
class RekeyingAnonymiser(Protocol):
    """An anonymiser that also re-keys (``pseudogate.batch.extracts.ClusterAnonymiser``, on
    a Dask cluster): it is given the joined table with linkage tokens, the columns to re-key
    and the project's derived key only, and returns what the plain call would return for the
    re-keyed table."""

    def rekey_and_anonymise(self, table: pa.Table, policy: Policy, *, rekey: tuple[str, ...],
                            project_key: ShippedKey, person_column: str) -> Anonymised: ...


class VersionJoin(Protocol):
    """:func:`join_versions` bound to a project's layout (what the workers call)."""

    def __call__(self, left: pa.Table, rights: Iterable[pa.Table], *,
                 optout_tokens: pa.Array | None,
                 carry: str | None = None) -> tuple[pa.Table, pa.Array]: ...


@dataclass(frozen=True, slots=True)
class VersionSource:
    """One dataset version as a worker reads it: its file (an absolute path in the data
    directory, which the workers share) and the stored columns the join needs, link first."""

    path: str
    link_column: str
    columns: tuple[str, ...]


@dataclass(frozen=True)
class ExtractJoin:
    """An exact project's join, for an anonymiser that runs it on a cluster.

    ``join(left, rights, optout_tokens=..., carry=...)`` (:func:`join_versions`) joins some
    rows of the first version (in order, read with ``sources[0].columns``) with, for each
    further version in order, at least its rows holding one of their link tokens, and removes
    the opted-out people: those rows' rows of the extract, in order, and the distinct linkage
    tokens removed. ``rekey``: the columns whose linkage tokens become project tokens.
    """

    sources: tuple[VersionSource, ...]
    optout_tokens: pa.Array | None
    join: VersionJoin
    header: tuple[str, ...]
    rekey: tuple[str, ...]


class JoinedAnonymised(Anonymised, Protocol):
    """A joining anonymiser's result: also the distinct people its join removed as opted out."""

    @property
    def optouts_removed(self) -> int: ...


@runtime_checkable
class JoiningAnonymiser(Protocol):
    """An anonymiser that also joins and re-keys (``pseudogate.batch.extracts.ClusterAnonymiser``,
    on a Dask cluster): given where the versions are, the opt-out tokens and the project's
    derived key only, it returns what the plain call would return for the joined, re-keyed
    table, and the people removed as opted out."""

    def join_and_anonymise(self, join: ExtractJoin, policy: Policy, *, project_key: ShippedKey,
                           person_column: str) -> JoinedAnonymised: ...


DEFAULT_MAX_MESSAGE_BYTES = 3 * 1024 * 1024


@dataclass(frozen=True)
class ExtractInputs:
    """What an extract is built from (gathered and checked by the store)."""

    project_id: str
    domain: str
    versions: tuple[VersionRecord, ...]
    policy: Policy
    project_tokeniser: Tokeniser
    linkage_key_id: str
    optout_snapshot: OptOutSnapshot | None
    optout_tokens: pa.Array | None
    created_at: str
    linkage: Linkage = field(default_factory=Linkage)


@dataclass
class Extract:
    """A finished extract: its table (utf8 cells, never null) and its signed manifest."""

    project: str
    arrow: pa.Table
    manifest: Manifest
    report: Any = None
    _frame: pd.DataFrame | None = field(default=None, repr=False)

    @property
    def header(self) -> list[str]:
        return list(self.arrow.column_names)

    @property
    def rows(self) -> int:
        return int(self.arrow.num_rows)

    @property
    def table(self) -> pd.DataFrame:
        """The extract as a DataFrame of strings, columns in order."""
        if self._frame is None:
            self._frame = self.arrow.to_pandas()
        return self._frame

    def manifest_json(self) -> str:
        """The manifest as the JSON object sent after the data (and written by ``--manifest``)."""
        return self.manifest.to_json()

    def iter_arrow_ipc(
        self,
        *,
        rows_per_message: int | None = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> Iterator[bytes]:
        """Complete Arrow IPC streams of consecutive row slices (at least one, even if empty).

        Each message stays under ``max_message_bytes`` (gRPC's default limit is 4 MiB): a
        slice that would be larger is split in halves until it fits (one row always goes).
        """
        if rows_per_message is not None and rows_per_message < 1:
            raise InvalidInput("rows_per_message must be at least 1")
        total = self.arrow.num_rows
        if rows_per_message is None:
            per_row = max(1, self.arrow.nbytes // max(total, 1))
            rows_per_message = max(1, int(max_message_bytes * 0.8) // per_row)
        if total == 0:
            yield ipc_stream_bytes(self.arrow)
            return
        for start in range(0, total, rows_per_message):
            yield from _fitting(self.arrow.slice(start, rows_per_message), max_message_bytes)


def _fitting(table: pa.Table, limit: int) -> Iterator[bytes]:
    message = ipc_stream_bytes(table)
    if len(message) <= limit or table.num_rows <= 1:
        yield message
        return
    half = table.num_rows // 2
    yield from _fitting(table.slice(0, half), limit)
    yield from _fitting(table.slice(half), limit)


def optouts_shown(count: int) -> int | str:
    """Opt-out counts below 10 are shown as ``"<10"`` (small numbers can identify people)."""
    return count if count >= 10 else FEW_OPTOUTS


def _stored_links(
    inputs: ExtractInputs, layout: JoinLayout, files: DatasetFiles, keyring: Keyring
) -> list[pa.Array] | None:
    """Each dataset's link when it is not its stored link column: the representative tokens
    of a probabilistic project; None for an exact one (the stored columns are read)."""
    if not inputs.linkage.probabilistic:
        return None
    assert inputs.linkage.threshold is not None
    clustered = representative_links(
        inputs.versions, layout.link_columns, files=files, keyring=keyring,
        threshold=inputs.linkage.threshold,
    )
    return list(clustered.links)


def _link(table: pa.Table, column: str | None, links: Sequence[pa.Array] | None,
          i: int) -> pa.Array:
    if links is not None:
        return links[i]
    assert column is not None
    return as_text(table.column(column))


def _needed(dataset: str, layout: JoinLayout, i: int, links: list[pa.Array] | None) -> list[str]:
    """The stored columns the join reads of a dataset (never its sealed encodings)."""
    link = layout.link_columns[i]
    names = [c for d, c in layout.columns if d == dataset]
    return names if links is not None or link is None else [link, *names]


def join_versions(
    left: pa.Table,
    rights: Iterable[pa.Table],
    *,
    layout: JoinLayout,
    optout_tokens: pa.Array | None,
    links: Sequence[pa.Array] | None = None,
    carry: str | None = None,
) -> tuple[pa.Table, pa.Array]:
    """The joined table with linkage tokens, opt-outs removed; and the distinct tokens removed.

    ``left``: the first version's needed columns (all its rows, or some of them, in order);
    ``rights``: each further version's (read lazily, one at a time), all rows or at least those
    whose link occurs in ``left``: the join only looks at matching rows, in their order, so the
    result holds exactly those left rows' rows of the whole extract. ``links`` (probabilistic
    projects) replaces each dataset's stored link column. ``carry``: a further column of
    ``left`` (a worker's row numbers) kept beside each of its rows, last."""
    first = layout.datasets[0]
    link = _link(left, layout.link_columns[0], links, 0)
    removed = pa.array([], type=pa.string())
    if optout_tokens is not None and len(optout_tokens):
        opted = pc.is_in(link, value_set=optout_tokens)
        removed = pc.unique(pc.filter(link, opted))
        keep = pc.invert(opted)
        left = left.filter(keep)
        link = pc.filter(link, keep)
    columns: dict[str, pa.Array] = {PERSON: link}
    if carry is not None:
        columns[carry] = left.column(carry).combine_chunks()
    for _, name in ((d, c) for d, c in layout.columns if d == first):
        columns[f"{first}.{name}"] = as_text(left.column(name))
    for i, right in enumerate(rights, 1):
        dataset = layout.datasets[i]
        left_idx, right_idx = left_join(
            columns[PERSON], _link(right, layout.link_columns[i], links, i))
        if len(left_idx) != len(columns[PERSON]):  # else each left row appears once, in order
            left_take = pa.array(left_idx, type=pa.int64())
            columns = {name: arr.take(left_take) for name, arr in columns.items()}
        for owner, name in layout.columns:
            if owner == dataset:
                values = as_text(right.column(name)).take(right_idx)
                columns[f"{owner}.{name}"] = pc.fill_null(values, "")
    names = layout.header if carry is None else [*layout.header, carry]
    return pa.Table.from_arrays([columns[name] for name in names], names=names), removed


def _joined(
    inputs: ExtractInputs,
    layout: JoinLayout,
    files: DatasetFiles,
    links: list[pa.Array] | None = None,
) -> tuple[pa.Table, int]:
    """The whole joined table, read and joined here; and the people removed as opted out."""
    first = inputs.versions[0]
    left = files.read(first.file, columns=_needed(first.dataset, layout, 0, links))
    rights = (files.read(v.file, columns=_needed(v.dataset, layout, i, links))
              for i, v in enumerate(inputs.versions[1:], 1))
    joined, removed = join_versions(left, rights, layout=layout,
                                    optout_tokens=inputs.optout_tokens, links=links)
    return joined, len(removed)


def _extract_join(inputs: ExtractInputs, layout: JoinLayout, files: DatasetFiles,
                  rekey: tuple[str, ...]) -> ExtractJoin:
    """What a joining anonymiser needs for an exact project (no data read here)."""
    sources = []
    for i, version in enumerate(inputs.versions):
        link = layout.link_columns[i]
        assert link is not None  # exact projects: every dataset has its link column
        sources.append(VersionSource(
            path=str(files.path(version.file).absolute()), link_column=link,
            columns=tuple(_needed(version.dataset, layout, i, None))))
    return ExtractJoin(
        sources=tuple(sources),
        optout_tokens=inputs.optout_tokens,
        join=functools.partial(join_versions, layout=layout),
        header=tuple(layout.header),
        rekey=rekey,
    )


def _report_value(report: Any, name: str) -> Any:
    """A report field as a plain JSON value (numpy scalars become int/float)."""
    value: Any = report.get(name) if isinstance(report, Mapping) else getattr(report, name, None)
    return value.item() if hasattr(value, "item") else value


def _to_arrow_text(frame: pd.DataFrame) -> pa.Table:
    """The anonymiser's output as utf8 columns, missing as ""."""
    arrays = []
    for name in frame.columns:
        values = frame[name].to_numpy(dtype=object)
        try:
            arr = pa.array(values, type=pa.string(), from_pandas=True)
        except (pa.ArrowException, TypeError):  # not all text: write each cell as text
            arr = pa.array([None if pd.isna(v) else str(v) for v in values], type=pa.string())
        arrays.append(pc.fill_null(arr, ""))
    return pa.Table.from_arrays(arrays, names=[str(c) for c in frame.columns])


def _project_key(inputs: ExtractInputs, keyring: Keyring) -> ShippedKey:
    """The one key workers receive: the project's, derived (never the keyring)."""
    return keyring.project_key_to_ship(inputs.project_id, key_id=inputs.project_tokeniser.key_id)


def _rekeyed_and_anonymised(
    joined: pa.Table, inputs: ExtractInputs, keyring: Keyring, anonymiser: Anonymiser,
    rekey: tuple[str, ...],
) -> Anonymised:
    """A table joined here, re-keyed here (or on a cluster) and anonymised."""
    if isinstance(anonymiser, RekeyingAnonymiser):  # on a cluster: re-keyed there
        return anonymiser.rekey_and_anonymise(
            joined, inputs.policy, rekey=rekey, project_key=_project_key(inputs, keyring),
            person_column=PERSON)
    rekeyed = {
        name: rekey_tokens(joined.column(name).combine_chunks(), inputs.project_tokeniser)
        if name in rekey else joined.column(name)
        for name in joined.column_names
    }
    del joined
    frame = pa.Table.from_pydict(rekeyed).to_pandas()
    del rekeyed
    return anonymiser(frame, inputs.policy, keyring=None, person_column=PERSON)


def build_extract(
    inputs: ExtractInputs,
    *,
    files: DatasetFiles,
    keyring: Keyring,
    anonymiser: Anonymiser,
) -> Extract:
    """Join, remove opt-outs, re-key to project tokens, anonymise, hash and sign."""
    layout = join_layout(
        inputs.versions, domain=inputs.domain, probabilistic=inputs.linkage.probabilistic
    )
    try:
        inputs.policy.check_input_columns(layout.header, names_are_known=True)
    except InvalidInput as exc:
        raise FailedPrecondition(
            f"the project's policy no longer fits its datasets' latest versions: {exc}"
        ) from None
    rekey = tuple(name for name in layout.header
                  if name == PERSON or name in layout.token_columns)
    joins_there = isinstance(anonymiser, JoiningAnonymiser) and not inputs.linkage.probabilistic
    joined: pa.Table | None = None
    if not joins_there:
        links = _stored_links(inputs, layout, files, keyring)
        joined, removed_people = _joined(inputs, layout, files, links)
        del links
    try:
        if joined is None:  # on a cluster: read, joined, opt-outs removed and re-keyed there
            assert isinstance(anonymiser, JoiningAnonymiser)
            joined_there = anonymiser.join_and_anonymise(
                _extract_join(inputs, layout, files, rekey), inputs.policy,
                project_key=_project_key(inputs, keyring), person_column=PERSON)
            removed_people = joined_there.optouts_removed
            result: Anonymised = joined_there
        else:
            result = _rekeyed_and_anonymised(joined, inputs, keyring, anonymiser, rekey)
            del joined
    except InvalidInput as exc:
        # The caller sent only a project id: a data or policy problem is a precondition.
        raise FailedPrecondition(f"the project's extract cannot be produced: {exc}") from None
    report = result.report
    final = _to_arrow_text(result.table)
    signer = keyring.signer()
    l_achieved = _report_value(report, "l_achieved")
    privacy = inputs.policy.privacy
    if privacy is None or privacy.l is None:
        l_achieved = None
    manifest = Manifest(
        project=inputs.project_id,
        datasets=tuple(DatasetVersion(name=v.dataset, version=v.version) for v in inputs.versions),
        policy_fingerprint=inputs.policy.fingerprint,
        key_ids=ManifestKeyIds(
            linkage=inputs.linkage_key_id,
            project=inputs.project_tokeniser.key_id,
            signing=signer.key_id,
        ),
        optout_snapshot=inputs.optout_snapshot.id if inputs.optout_snapshot else None,
        optouts_removed=optouts_shown(removed_people),
        rows=final.num_rows,
        k_achieved=_report_value(report, "k_achieved"),
        l_achieved=l_achieved,
        suppressed=_report_value(report, "suppressed"),
        loss=_report_value(report, "loss"),
        created_at=inputs.created_at,
        content_sha256=table_content_sha256(final),
        linkage=inputs.linkage,
    ).signed(signer.sign)
    return Extract(project=inputs.project_id, arrow=final, manifest=manifest, report=report)
