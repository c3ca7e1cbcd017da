"""Per-organisation storage quotas: a provider cannot fill the gateway's disk."""

from __future__ import annotations

from pathlib import Path

import pytest

from pseudogate.core.errors import ConfigurationError, ResourceExhausted
from pseudogate.core.keyring import Keyring
from pseudogate.core.policy import Policy
from pseudogate.gateway import Store

from .helpers import Clock, council_columns, files_under, gp_columns, ipc, people, submit


def _stored_bytes(data_dir: Path) -> int:
    return sum(p.stat().st_size for p in (data_dir / "datasets").rglob("*.parquet"))


def test_when_a_submission_would_exceed_its_organisations_quota_then_it_is_refused_nothing_stored(
    data_dir: Path, keyring: Keyring, policies: dict[str, Policy], clock: Clock
) -> None:
    payload = ipc(gp_columns(people(50)))
    with Store.open(data_dir, keyring=keyring, policies=policies, clock=clock) as unlimited:
        submit(unlimited, "gp_a", "gp", "gp-denbigh", payload)
    one_version = _stored_bytes(data_dir)
    quota = one_version * 3 // 2  # room for one version, not two
    with Store.open(
        data_dir, keyring=keyring, policies=policies, clock=clock, storage_quota_per_org=quota
    ) as store:
        assert store.quota is not None and store.quota.used("gp-denbigh") == one_version
        before = files_under(data_dir)
        with pytest.raises(ResourceExhausted, match="storage quota exceeded") as refused:
            submit(store, "gp_b", "gp", "gp-denbigh", payload)
        assert f"stores {one_version} bytes" in str(refused.value)
        assert f"quota is {quota} bytes" in str(refused.value)
        assert files_under(data_dir) == before, "no version file, no temporary file"
        assert store.catalog.dataset_names() == ["gp_a"]
        # Another organisation has a quota of its own.
        submit(store, "council_a", "council", "council-conwy", ipc(council_columns(people(50))))
        assert store.catalog.dataset_names() == ["council_a", "gp_a"]
        assert store.quota.used("gp-denbigh") == one_version


def test_when_a_quota_is_not_positive_then_the_store_refuses_to_open(
    data_dir: Path, keyring: Keyring, policies: dict[str, Policy]
) -> None:
    with pytest.raises(ConfigurationError, match="positive"):
        Store.open(data_dir, keyring=keyring, policies=policies, storage_quota_per_org=0)
    with Store.open(data_dir, keyring=keyring, policies=policies):
        pass  # the refused store released the data directory
