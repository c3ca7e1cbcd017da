"""Ingestion and ``identify`` columns (issue 10): the sealed linkage encoding is stored, the
identity values never are; empty NHS numbers are allowed only beside identity fields."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pseudogate.core.arrow_ipc import ipc_stream_bytes
from pseudogate.core.encoding import ENCODING_NAME, key_id_of
from pseudogate.core.errors import FailedPrecondition, RowErrors
from pseudogate.core.keyring import Keyring
from pseudogate.core.names import ENCODING_COLUMN
from pseudogate.core.policy import Policy, parse_policy
from pseudogate.gateway import ColumnInfo, Store

from .helpers import Clock, files_under, ipc, linkage_token, submit

SOCIAL_CARE = """\
version: 1
name: social-care
columns:
  nhs_number: {action: tokenise, kind: nhs_number}
  forename:   {action: identify, field: given_name}
  surname:    {action: identify, field: family_name}
  dob:        {action: identify, field: date_of_birth}
  postcode:   {action: identify, field: postcode}
  address:    {action: identify, field: address}
  service:    {action: keep}
"""

NO_IDENTITY = """\
version: 1
name: plain
columns:
  nhs_number: {action: tokenise, kind: nhs_number}
  service:    {action: keep}
"""

FIRE = """\
version: 1
name: fire
columns:
  first_name: {action: identify, field: given_name}
  born:       {action: identify, field: date_of_birth}
  visit:      {action: keep}
"""

IDENTITY_COLUMNS = {"forename": "given_name", "surname": "family_name", "dob": "date_of_birth",
                    "postcode": "postcode", "address": "address"}


def rows(n: int = 4) -> dict[str, list[str | None]]:
    return {
        "nhs_number": ["9434765919", "", "401 023 2137", "  "][:n],
        "forename": ["Siobhán", "BILL", None, ""][:n],
        "surname": ["O'Connor-Smythe", "jones", "Ødegård", ""][:n],
        "dob": ["1961-07-23", "23/07/1961", "19610723", "not a date"][:n],
        "postcode": ["LL15 1AA", "ll151aa", "???", ""][:n],
        "address": ["12 Station Road, Ruthin", "Flat 3, 9 High St", "", "x" * 500][:n],
        "service": ["home care", "meals", "respite", "meals"][:n],
    }


@pytest.fixture
def policies() -> dict[str, Policy]:
    return {
        "social-care": parse_policy(SOCIAL_CARE, origin="social-care.yaml"),
        "plain": parse_policy(NO_IDENTITY, origin="plain.yaml"),
        "fire": parse_policy(FIRE, origin="fire.yaml"),
    }


def stored(store: Store, dataset: str) -> pa.Table:
    return store.read_version(dataset)


def expected_records(keyring: Keyring, columns: dict[str, list[str | None]]) -> np.ndarray:
    encoder = keyring.linkage_encoder(key_id="lk1")
    by_field = {field: columns[name] for name, field in IDENTITY_COLUMNS.items() if name in columns}
    return encoder.encode(by_field, n=len(columns["service"])).records


def test_when_a_policy_identifies_columns_then_only_tokens_kept_values_and_the_encoding_are_stored(
    store: Store,
) -> None:
    submit(store, "care", "social-care", "council", ipc(rows()))
    table = stored(store, "care")
    assert table.schema == pa.schema([
        pa.field("nhs_number", pa.string(), nullable=False),
        pa.field("service", pa.string(), nullable=False),
        pa.field(ENCODING_COLUMN, pa.binary(), nullable=False),
    ])
    version = store.catalog.latest_version("care")
    assert version is not None
    assert version.columns == (
        ColumnInfo("nhs_number", "tokenise", "nhs_number", "nhs_number"),
        ColumnInfo("service", "keep"),
        ColumnInfo(ENCODING_COLUMN, "encode", None, ENCODING_NAME),
    )
    assert version.encoding_column == ENCODING_COLUMN
    assert version.linkage_key_id == "lk1"
    assert table.column("service").to_pylist() == ["home care", "meals", "respite", "meals"]


def test_when_encodings_are_opened_then_they_equal_the_encoders_records_of_the_same_values(
    store: Store, keyring: Keyring
) -> None:
    first, second = rows(), rows()
    second["forename"] = ["Zoë", "Kwame", "Mei", "Priya"]
    submit(store, "care", "social-care", "council", ipc(first), ipc(second))
    sealed = stored(store, "care").column(ENCODING_COLUMN).to_pylist()
    assert len(sealed) == 8 and all(key_id_of(b) == "lk1" for b in sealed)
    opened = keyring.linkage_encoder(key_id="lk1").open(sealed)
    assert opened.key_id == "lk1"
    expected = np.concatenate([expected_records(keyring, first), expected_records(keyring, second)])
    assert opened.records.tobytes() == expected.tobytes()


def test_when_two_rows_hold_the_same_identity_then_their_stored_blobs_differ(
    store: Store, keyring: Keyring
) -> None:
    same = {name: [values[0], values[0]] for name, values in rows().items()}
    submit(store, "care", "social-care", "council", ipc(same))
    a, b = stored(store, "care").column(ENCODING_COLUMN).to_pylist()
    assert a != b  # sealed under fresh nonces: equal records are not visible as equal bytes
    opened = keyring.linkage_encoder(key_id="lk1").open([a, b]).records
    assert opened[0].tobytes() == opened[1].tobytes()


def test_when_identity_values_are_messy_then_none_is_a_row_error(
    store: Store, keyring: Keyring
) -> None:
    messy = ["", "   ", "\t\n", "??", "0000-00-00", "31/02/1999", "🙂🙃", "Ⅻ", "\u200b", "-",
             "a" * 5000, "NULL", "N/A", "19999999", "ß", "İ", "ǅ", "\x00", "SW1A 1AA 1AA", "1"]
    n = len(messy)
    columns: dict[str, list[str | None]] = {
        "nhs_number": ["9434765919"] * n,
        **{name: list(messy) for name in IDENTITY_COLUMNS},
        "service": ["s"] * n,
    }
    columns["forename"][0] = None  # nulls are missing too
    submit(store, "care", "social-care", "council", ipc(columns))
    sealed = stored(store, "care").column(ENCODING_COLUMN).to_pylist()
    assert len(sealed) == n
    opened = keyring.linkage_encoder(key_id="lk1").open(sealed)
    assert opened.records.tobytes() == expected_records(keyring, columns).tobytes()


def test_when_every_identity_field_is_empty_then_the_row_still_gets_an_all_missing_record(
    store: Store, keyring: Keyring
) -> None:
    submit(store, "fire_visits", "fire", "fire-service",
           ipc({"first_name": ["", None], "born": ["", ""], "visit": ["v1", "v2"]}))
    table = stored(store, "fire_visits")
    assert table.column_names == ["visit", ENCODING_COLUMN]
    opened = keyring.linkage_encoder(key_id="lk1").open(table.column(ENCODING_COLUMN).to_pylist())
    missing = keyring.linkage_encoder(key_id="lk1").encode({}, n=2).records
    assert opened.records.tobytes() == missing.tobytes()


def test_when_identity_fields_are_present_then_an_empty_nhs_number_is_stored_empty(
    store: Store,
) -> None:
    submit(store, "care", "social-care", "council", ipc(rows()))
    assert stored(store, "care").column("nhs_number").to_pylist() == [
        linkage_token("9434765919", "nhs_number"), "",
        linkage_token("4010232137", "nhs_number"), "",
    ]


def test_when_no_identity_field_is_present_then_an_empty_nhs_number_is_still_a_row_error(
    store: Store, data_dir: Path
) -> None:
    with pytest.raises(RowErrors) as caught:
        submit(store, "plain_care", "plain", "council",
               ipc({"nhs_number": ["9434765919", "", " "], "service": ["a", "b", "c"]}))
    assert [(e.row, e.column, e.reason) for e in caught.value.errors] == [
        (2, "nhs_number", "empty"), (3, "nhs_number", "empty"),
    ]
    assert files_under(data_dir) == ["catalog.sqlite3", "store.lock"]


def test_when_an_nhs_number_is_invalid_then_it_is_a_row_error_even_with_identity_fields(
    store: Store, data_dir: Path
) -> None:
    bad = rows()
    bad["nhs_number"] = ["9434765910", "", "12345", "9434765919"]
    with pytest.raises(RowErrors) as caught:
        submit(store, "care", "social-care", "council", ipc(bad))
    assert [(e.row, e.column, e.reason) for e in caught.value.errors] == [
        (1, "nhs_number", "invalid_check_digit"), (3, "nhs_number", "bad_format"),
    ]
    message = str(caught.value)
    for value in ("9434765910", "12345", "Siobhán", "O'Connor", "Station Road", "1961"):
        assert value not in message
    assert files_under(data_dir) == ["catalog.sqlite3", "store.lock"]


def test_when_a_later_message_has_a_bad_row_then_nothing_is_stored(
    store: Store, data_dir: Path
) -> None:
    good, bad = rows(), rows()
    bad["nhs_number"][2] = "9434765910"
    with pytest.raises(RowErrors) as caught:
        submit(store, "care", "social-care", "council", ipc(good), ipc(bad))
    assert [(e.row, e.reason) for e in caught.value.errors] == [(7, "invalid_check_digit")]
    assert store.catalog.dataset_names() == []
    assert files_under(data_dir) == ["catalog.sqlite3", "store.lock"]


def test_when_an_identity_value_is_not_utf8_then_it_is_an_invalid_utf8_row_error(
    store: Store, data_dir: Path
) -> None:
    columns = rows()
    arrays = {name: pa.array([v or "" for v in values]) for name, values in columns.items()}
    arrays["surname"] = pa.array([b"Jones", b"J\xffnes", b"", b""], pa.binary()).view(pa.string())
    with pytest.raises(RowErrors) as caught:
        submit(store, "care", "social-care", "council", ipc_stream_bytes(pa.table(arrays)))
    assert [(e.row, e.column, e.reason) for e in caught.value.errors] == [
        (2, "surname", "invalid_utf8")
    ]
    assert files_under(data_dir) == ["catalog.sqlite3", "store.lock"]


def test_when_a_policy_names_the_encoding_column_then_the_submission_is_refused_at_start(
    data_dir: Path, keyring: Keyring, clock: Clock
) -> None:
    reserved = parse_policy(SOCIAL_CARE.replace("service:", "pg:linkage_encoding:"),
                            origin="reserved.yaml")
    with Store.open(data_dir, keyring=keyring, policies={"reserved": reserved},
                    clock=clock) as store:
        with pytest.raises(FailedPrecondition) as caught:
            store.begin_submission(dataset="care", policy_name="reserved", organisation="council")
        assert str(caught.value) == (
            "policy 'reserved' names a column 'pg:linkage_encoding' (line 10): that name is "
            "reserved for the stored linkage encoding; rename the column in the policy"
        )
        assert store.catalog.dataset_names() == []
    assert files_under(data_dir) == ["catalog.sqlite3", "store.lock"]


def test_when_the_parquet_file_is_written_then_the_encoding_has_no_statistics_or_dictionary(
    store: Store,
) -> None:
    submit(store, "care", "social-care", "council", ipc(rows()))
    version = store.catalog.latest_version("care")
    assert version is not None
    meta = pq.ParquetFile(store.files.path(version.file)).metadata
    assert meta.num_columns == 3
    for group in range(meta.num_row_groups):
        column = meta.row_group(group).column(2)
        assert column.path_in_schema == ENCODING_COLUMN
        assert not column.is_stats_set and column.statistics is None
        assert not column.has_dictionary_page
        assert "RLE_DICTIONARY" not in column.encodings


def test_when_a_policy_has_no_identity_field_then_no_encoding_is_stored(store: Store) -> None:
    submit(store, "plain_care", "plain", "council",
           ipc({"nhs_number": ["9434765919"], "service": ["a"]}))
    version = store.catalog.latest_version("plain_care")
    assert version is not None and version.encoding_column is None
    assert stored(store, "plain_care").column_names == ["nhs_number", "service"]
