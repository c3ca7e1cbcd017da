"""Opt-out snapshots: tokens only, consecutive ids, all or nothing, duplicates once."""

from __future__ import annotations

from pathlib import Path

import pytest

from pseudogate.core.errors import InvalidInput, RowErrors
from pseudogate.gateway import Store

from .helpers import linkage_token, people


def test_when_imported_then_snapshot_holds_distinct_tokens_only(store: Store, data_dir: Path) -> None:
    numbers = [p["nhs_number"] for p in people(5)]
    messy = [numbers[0], f"{numbers[0][:3]}-{numbers[0][3:6]}-{numbers[0][6:]}", *numbers[1:]]
    snapshot = store.import_optouts(messy)
    assert (snapshot.id, snapshot.count, snapshot.domain) == (1, 5, "person")
    assert sorted(store.catalog.optout_tokens(1)) == sorted(linkage_token(n) for n in numbers)
    assert store.import_optouts(numbers[:2]).id == 2
    assert store.latest_optout_snapshot().count == 2
    stored = b"".join(p.read_bytes() for p in data_dir.rglob("*") if p.is_file())
    assert not any(n.encode() in stored for n in numbers)


def test_when_a_number_is_invalid_then_the_whole_import_is_refused(store: Store) -> None:
    numbers = [p["nhs_number"] for p in people(4)]
    bad = numbers[2][:9] + str((int(numbers[2][9]) + 1) % 10)
    with pytest.raises(RowErrors) as caught:
        store.import_optouts([numbers[0], "", bad, numbers[3]])
    assert [(e.row, e.reason) for e in caught.value.errors] == [
        (2, "empty"), (3, "invalid_check_digit")
    ]
    assert bad not in str(caught.value)
    assert store.latest_optout_snapshot() is None


def test_when_list_is_empty_and_allowed_then_the_snapshot_clears_opt_outs(store: Store) -> None:
    store.import_optouts([p["nhs_number"] for p in people(3)])
    cleared = store.import_optouts([], allow_empty=True)
    assert (cleared.id, cleared.count) == (2, 0)


def test_when_list_is_empty_and_not_allowed_then_it_is_refused_and_opt_outs_stay(
    store: Store,
) -> None:
    store.import_optouts([p["nhs_number"] for p in people(3)])
    with pytest.raises(InvalidInput, match="empty.*allow_empty"):
        store.import_optouts([])
    latest = store.latest_optout_snapshot()
    assert latest is not None and (latest.id, latest.count) == (1, 3)
