"""Provider submissions: Arrow IPC in, tokens out, all or nothing.

A :class:`Submission` applies its ingestion policy to each Arrow IPC stream as it arrives:
tokenised columns are normalised and tokenised under the linkage key, dropped columns are
never written, kept columns are stored as they are. ``identify`` columns (issue 10) become
each record's ``pg-fbf-v1`` linkage encoding under the same linkage key, sealed, stored as the
binary column :data:`~pseudogate.core.names.ENCODING_COLUMN` (last); the identity values
themselves are never written. Only the result (tokens, kept values, sealed encodings) goes to
a temporary Parquet file; raw identifiers stay in memory for one message at most.

Identity values are never row errors: the encoder treats what it cannot use as missing. In a
policy with identity fields, an empty NHS number (a column tokenised with kind
``nhs_number``) is allowed and stored as "": that record links by its identity fields alone.

The life cycle is ``add_arrow_ipc``* → ``prepare`` → ``commit`` (or ``abort`` at any point).
``prepare`` finishes every check and the file; ``commit(record=...)`` then follows the store's
one rule for state changes (:mod:`pseudogate.gateway.changes`): it plans the version, has the audit
event written, and publishes the file and the catalog rows in one transaction.
"""

from __future__ import annotations

import contextlib
import enum
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import pyarrow as pa
import pyarrow.parquet as pq

from pseudogate.core.clock import Clock, rfc3339
from pseudogate.core.columns import INVALID_UTF8, tokenise_column, valid_text
from pseudogate.core.encoding import ENCODING_NAME, Encoder
from pseudogate.core.errors import (
    FailedPrecondition,
    InvalidInput,
    PermissionDenied,
    ResourceExhausted,
    RowError,
    RowErrors,
    translating_storage_full,
)
from pseudogate.core.identity import IdentityField
from pseudogate.core.keyring import Keyring, Purpose
from pseudogate.core.names import DATASET_NAME_RE, ENCODING_COLUMN, check_dataset_name
from pseudogate.core.normalise import Kind, Reason
from pseudogate.core.policy import Action, Policy, column_label
from pseudogate.core.tokens import Tokeniser
from pseudogate.gateway.changes import (
    ChangeFacts,
    Recorder,
    commit_in_catalog,
    new_change_id,
    unaudited,
)
from pseudogate.gateway.quotas import StorageQuota
from pseudogate.store.catalog import Catalog, ColumnInfo, VersionRecord
from pseudogate.store.datasets import DatasetFiles

__all__ = [
    "DATASET_NAME_RE",
    "MAX_MESSAGE_BYTES",
    "MAX_ROW_ERRORS",
    "Submission",
    "SubmissionResult",
    "SubmissionSummary",
    "check_dataset_name",
]

MAX_MESSAGE_BYTES = 32 * 1024 * 1024
#: Validation goes on after the first invalid row so that providers can fix a file in one go,
#: but stops here: the submission is refused anyway.
MAX_ROW_ERRORS = 1000
_IPC_END_MARKER = b"\xff\xff\xff\xff\x00\x00\x00\x00"
#: The catalog's action for the sealed linkage encoding column.
ENCODE_ACTION = "encode"


@dataclass(frozen=True, slots=True)
class SubmissionSummary:
    """A validated submission waiting for ``commit`` (no version yet)."""

    dataset: str
    organisation: str
    rows: int
    columns: tuple[str, ...]
    policy_name: str
    policy_fingerprint: str
    key_id: str


@dataclass(frozen=True, slots=True)
class SubmissionResult:
    """A committed submission."""

    dataset: str
    version: int
    rows: int
    policy_fingerprint: str
    key_id: str


class _State(enum.Enum):
    OPEN = "open"
    PREPARED = "prepared"
    COMMITTED = "committed"
    ABORTED = "aborted"


class Submission:
    """One provider submission to one dataset. Built by ``Store.begin_submission``."""

    def __init__(
        self,
        *,
        dataset: str,
        organisation: str,
        policy_name: str,
        policy: Policy,
        keyring: Keyring,
        catalog: Catalog,
        files: DatasetFiles,
        clock: Clock,
        quota: StorageQuota | None = None,
    ) -> None:
        self.dataset = dataset
        self.organisation = organisation
        self.policy_name = policy_name
        self.policy = policy
        self.key_id = keyring.primary(Purpose.LINKAGE).id
        self.change_id = new_change_id()
        reserved = next((r for r in policy.columns if r.name == ENCODING_COLUMN), None)
        if reserved is not None:
            raise FailedPrecondition(
                f"policy {policy_name!r} names a column {ENCODING_COLUMN!r} (line "
                f"{reserved.line}): that name is reserved for the stored linkage encoding; "
                "rename the column in the policy"
            )
        self._keyring = keyring
        self._catalog = catalog
        self._files = files
        self._clock = clock
        self._quota = quota
        self._state = _State.OPEN
        self._messages = 0
        self._rows = 0
        self._schema: pa.Schema | None = None
        self._stored: list[ColumnInfo] = []
        self._out_schema: pa.Schema | None = None
        self._tokenisers: dict[str, Tokeniser] = {}
        #: Column -> identity field of the policy's identify columns (encoded, never stored).
        self._identity: dict[str, IdentityField] = dict(policy.identity_columns)
        self._errors: list[RowError] = []
        self._temp: Path | None = None
        self._writer: pq.ParquetWriter | None = None

    # -- context manager: anything but a commit leaves no trace ---------------------------------

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._state is not _State.COMMITTED:
            self.abort()

    @property
    def rows(self) -> int:
        """Rows received so far."""
        return self._rows

    # -- receiving --------------------------------------------------------------------------

    def add_arrow_ipc(self, payload: bytes) -> int:
        """Apply the policy to one complete Arrow IPC stream; returns its row count.

        Invalid rows are collected and reported by ``prepare``; any other problem (a broken
        stream, a different schema, too many invalid rows) aborts the submission at once.
        """
        self._require(_State.OPEN)
        try:
            with translating_storage_full(self._temp or self._files.tmp_dir):
                return self._add(payload)
        except BaseException:
            self.abort()
            raise

    def _add(self, payload: bytes) -> int:
        self._messages += 1
        where = f"message {self._messages}"
        if len(payload) > MAX_MESSAGE_BYTES:
            raise ResourceExhausted(
                f"{where} holds {len(payload)} bytes; the limit is {MAX_MESSAGE_BYTES} bytes "
                "(32 MiB): send smaller record batches"
            )
        table = _read_ipc(bytes(payload), where)
        if self._schema is None:
            self._start(table.schema)
        elif not table.schema.equals(self._schema):
            raise InvalidInput(f"{where}: its schema differs from the first message's")
        offset = self._rows
        self._rows += table.num_rows
        arrays: list[pa.Array] = []
        errors: list[RowError] = []
        # Every column, dropped ones too: Arrow does not validate utf8 read from IPC, and bytes
        # that are not UTF-8 would break every later read of the stored dataset.
        texts: dict[str, pa.Array] = {}
        for name in table.schema.names:
            texts[name], not_utf8 = valid_text(table.column(name))
            errors.extend(RowError(offset + i + 1, INVALID_UTF8, name) for i in not_utf8)
        for info in self._stored:
            if info.action == ENCODE_ACTION:
                continue  # last; built below from the identify columns once the rows are valid
            values = texts[info.name]
            if info.action == Action.TOKENISE.value:
                assert info.domain is not None and info.kind is not None
                rule = self.policy.rule(info.name)
                assert rule.kind is not None
                done = tokenise_column(
                    values, kind=rule.kind, tokeniser=self._tokenisers[info.domain]
                )
                taken = {e.row for e in errors if e.column == info.name}  # already invalid_utf8
                # With identity fields, a record without an NHS number links by them: its
                # empty value is stored as "" (the tokeniser's output for it), not an error.
                allowed = (
                    {str(Reason.EMPTY)}
                    if self._identity and rule.kind is Kind.NHS_NUMBER
                    else set()
                )
                errors.extend(
                    RowError(offset + i + 1, reason, info.name)
                    for i, reason in done.errors
                    if offset + i + 1 not in taken and reason not in allowed
                )
                arrays.append(done.tokens)
            else:
                arrays.append(values)
        if self._identity and not errors and not self._errors:
            arrays.append(self._sealed_encodings(texts, table.num_rows))
        if errors:
            order = {name: n for n, name in enumerate(table.schema.names)}
            errors.sort(key=lambda e: (e.row, order[e.column]))
            self._errors.extend(errors)
            self._discard_output()  # an invalid submission is refused: write nothing more
            if len(self._errors) >= MAX_ROW_ERRORS:
                raise RowErrors(
                    self._errors[:MAX_ROW_ERRORS],
                    context=f"submission to dataset {self.dataset!r} "
                    f"(stopped after {MAX_ROW_ERRORS} invalid values)",
                )
        if not self._errors and table.num_rows:
            self._write(pa.Table.from_arrays(arrays, schema=self._out_schema))
        return int(table.num_rows)

    def _sealed_encodings(self, texts: dict[str, pa.Array], n: int) -> pa.Array:
        """Each row's identity fields encoded and sealed: one binary value per row.

        The values are valid UTF-8 here (``valid_text``; rows that were not are errors and the
        message is not written). The encoder never raises on a value: what it cannot use is
        missing, and a row with every field missing still gets its (all-missing) record.
        A new encoder per message: its q-gram cache (fragments of the values) lives no longer
        than the message's raw values do.
        """
        encoder = self._encoder()
        columns: dict[IdentityField | str, Sequence[object]] = {
            field: texts[name].to_pylist() for name, field in self._identity.items()
        }
        sealed = encoder.seal(encoder.encode(columns, n=n))
        del columns
        return pa.array(sealed, type=pa.binary())

    def _encoder(self) -> Encoder:
        return self._keyring.linkage_encoder(key_id=self.key_id)

    def _start(self, schema: pa.Schema) -> None:
        policy_columns = {rule.name for rule in self.policy.columns}
        for position, field in enumerate(schema, 1):
            if field.type != pa.string():
                raise InvalidInput(
                    f"column {column_label(field.name, position, known=policy_columns)} has "
                    f"Arrow type {field.type}; "
                    "every column must be utf8"
                )
        self.policy.check_input_columns(schema.names)
        stored: list[ColumnInfo] = []
        for name in schema.names:
            rule = self.policy.rule(name)
            if rule.action is Action.DROP:
                continue
            if rule.action is Action.TOKENISE:
                if rule.kind is None or rule.domain is None:
                    raise FailedPrecondition(f"policy column {name!r} has no kind or domain")
                if rule.domain not in self._tokenisers:
                    self._tokenisers[rule.domain] = self._keyring.linkage_tokeniser(
                        rule.domain, key_id=self.key_id
                    )
                stored.append(ColumnInfo(name, Action.TOKENISE.value, rule.domain, rule.kind.value))
            elif rule.action is Action.KEEP:
                stored.append(ColumnInfo(name, Action.KEEP.value))
            elif rule.action is Action.IDENTIFY:
                continue  # encoded into ENCODING_COLUMN below, never stored itself
            else:
                raise FailedPrecondition(
                    f"policy {self.policy_name!r} column {name!r} is {rule.action.value}; "
                    "an ingestion policy may only tokenise, drop, keep or identify"
                )
        if self._identity:
            self._encoder()  # the linkage key must be usable before any data is taken
            stored.append(ColumnInfo(ENCODING_COLUMN, ENCODE_ACTION, None, ENCODING_NAME))
        if not stored:
            raise InvalidInput(f"policy {self.policy_name!r} drops every column: nothing to store")
        self._schema = schema
        self._stored = stored
        self._out_schema = pa.schema([
            pa.field(c.name, pa.binary() if c.action == ENCODE_ACTION else pa.string(),
                     nullable=False)
            for c in stored
        ])

    def _write(self, table: pa.Table) -> None:
        if self._writer is None:
            assert self._out_schema is not None
            self._temp = self._files.new_temp_path()
            self._writer = self._files.writer(
                self._temp,
                self._out_schema,
                token_columns=[c.name for c in self._stored if c.action == Action.TOKENISE.value],
                sealed_columns=[c.name for c in self._stored if c.action == ENCODE_ACTION],
            )
        self._writer.write_table(table)

    def _discard_output(self) -> None:
        if self._writer is not None:
            writer, self._writer = self._writer, None
            # The file is deleted next: a close that fails (disk full) must not keep it.
            with contextlib.suppress(OSError):
                writer.close()
        if self._temp is not None:
            self._temp.unlink(missing_ok=True)
            self._temp = None

    # -- finishing --------------------------------------------------------------------------

    def prepare(self) -> SubmissionSummary:
        """Finish every check and the temporary file; nothing is published yet."""
        self._require(_State.OPEN)
        try:
            if self._schema is None:
                raise InvalidInput("the submission holds no Arrow IPC data")
            if self._errors:
                raise RowErrors(self._errors, context=f"submission to dataset {self.dataset!r}")
            if self._rows == 0:
                raise InvalidInput("the submission holds no records")
            assert self._writer is not None
            with translating_storage_full(self._temp or self._files.tmp_dir):
                self._writer.close()
            self._writer = None
            if self._quota is not None:
                assert self._temp is not None
                self._quota.check(self.organisation, self._temp.stat().st_size)
        except BaseException:
            self.abort()
            raise
        self._state = _State.PREPARED
        return SubmissionSummary(
            dataset=self.dataset,
            organisation=self.organisation,
            rows=self._rows,
            columns=tuple(c.name for c in self._stored),
            policy_name=self.policy_name,
            policy_fingerprint=self.policy.fingerprint,
            key_id=self.key_id,
        )

    def commit(self, *, record: Recorder = unaudited) -> SubmissionResult:
        """Assign the next version, ``record`` the facts (the audit event), then publish: file
        rename and catalog rows in one transaction. If ``record`` raises, nothing is published.
        """
        self._require(_State.PREPARED)
        assert self._temp is not None
        temp = self._temp
        now = rfc3339(self._clock(), precision="seconds")
        planned: dict[str, Any] = {}

        def plan(db: sqlite3.Connection) -> ChangeFacts:
            owner = self._catalog.dataset_owner(self.dataset, db)
            if owner is not None and owner != self.organisation:
                raise PermissionDenied(f"dataset {self.dataset!r} belongs to another organisation")
            planned["new_dataset"] = owner is None
            planned["version"] = version = self._catalog.next_version(db, self.dataset)
            return ChangeFacts(
                change_id=self.change_id,
                dataset=self.dataset,
                policy_fingerprint=self.policy.fingerprint,
                key_ids={"linkage": self.key_id},
                counts={"rows": self._rows},
                details={"version": version},
            )

        def write(db: sqlite3.Connection) -> int:
            version: int = planned["version"]
            if planned["new_dataset"]:
                self._catalog.insert_dataset(db, self.dataset, self.organisation, now)
            relative = self._files.relative_version_path(self.dataset, version)
            self._catalog.insert_version(
                db,
                VersionRecord(
                    dataset=self.dataset,
                    version=version,
                    file=relative,
                    rows=self._rows,
                    columns=tuple(self._stored),
                    policy_name=self.policy_name,
                    policy_fingerprint=self.policy.fingerprint,
                    linkage_key_id=self.key_id,
                    organisation=self.organisation,
                    created_at=now,
                ),
            )
            with translating_storage_full(self._files.datasets_dir):
                planned["published"] = self._files.publish(temp, relative)
            self._temp = None
            return version

        try:
            version = commit_in_catalog(
                self._catalog,
                change_id=self.change_id,
                kind="submission",
                committed_at=now,
                plan=plan,
                write=write,
                record=record,
            )
        except BaseException:
            published: Path | None = planned.get("published")
            if published is not None:
                published.unlink(missing_ok=True)
            self.abort()
            raise
        self._state = _State.COMMITTED
        return SubmissionResult(
            dataset=self.dataset,
            version=version,
            rows=self._rows,
            policy_fingerprint=self.policy.fingerprint,
            key_id=self.key_id,
        )

    def abort(self) -> None:
        """Drop everything received; safe to call more than once."""
        if self._state is _State.COMMITTED:
            return
        self._discard_output()
        self._state = _State.ABORTED

    def _require(self, state: _State) -> None:
        if self._state is not state:
            raise FailedPrecondition(
                f"submission is {self._state.value}; this step needs it {state.value}"
            )


def _read_ipc(payload: bytes, where: str) -> pa.Table:
    """One complete Arrow IPC stream (schema, batches, end marker) as a table."""
    if not payload.endswith(_IPC_END_MARKER):
        raise InvalidInput(f"{where} is not a complete Arrow IPC stream (no end-of-stream marker)")
    try:
        with pa.ipc.open_stream(pa.py_buffer(payload)) as reader:
            return reader.read_all()
    except (pa.ArrowException, OSError, ValueError):
        # Arrow's own message is not shown: it is not ours to vouch for (it could quote data).
        raise InvalidInput(f"{where} is not a valid Arrow IPC stream") from None
