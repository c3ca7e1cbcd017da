"""The chain and checkpoint construction against an independently computed vector."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from hypothesis import given
from hypothesis import strategies as st

from pseudogate.audit import (
    GENESIS_HASH,
    canonical_bytes,
    make_checkpoint,
    next_hash,
    verify_checkpoint_signature,
    verify_export,
)
from pseudogate.core.errors import VerificationFailed

VECTOR: dict[str, Any] = json.loads(
    (Path(__file__).parent / "vectors" / "chain.json").read_text(encoding="utf-8")
)


def _public_key() -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(bytes.fromhex(VECTOR["public_key_hex"]))


def test_when_chain_starts_then_hash_0_is_32_zero_bytes() -> None:
    assert GENESIS_HASH == b"\x00" * 32


@pytest.mark.parametrize("index", [0, 1])
def test_when_event_is_serialised_then_bytes_match_the_vector(index: int) -> None:
    entry = VECTOR["events"][index]
    assert canonical_bytes(entry["event"]) == entry["canonical"].encode("utf-8")


def test_when_event_carries_its_hash_then_canonical_bytes_leave_it_out() -> None:
    entry = VECTOR["events"][0]
    with_hash = {**entry["event"], "hash": entry["hash"]}
    assert canonical_bytes(with_hash) == entry["canonical"].encode("utf-8")


def test_when_events_are_chained_then_hashes_match_the_vector() -> None:
    head = GENESIS_HASH
    for entry in VECTOR["events"]:
        head = next_hash(head, canonical_bytes(entry["event"]))
        assert head.hex() == entry["hash"]


def test_when_checkpoint_is_signed_with_the_rfc8032_key_then_it_matches_the_vector() -> None:
    key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(VECTOR["signing_seed_hex"]))
    expected = VECTOR["checkpoint"]
    made = make_checkpoint(expected["seq"], bytes.fromhex(expected["hash"]), expected["time"], key.sign)
    assert made == expected
    verify_checkpoint_signature(made, _public_key())


def test_when_the_vector_is_an_export_then_it_verifies() -> None:
    lines = [json.dumps({**e["event"], "hash": e["hash"]}) for e in VECTOR["events"]]
    lines.append(json.dumps(VECTOR["checkpoint"]))
    report = verify_export(lines, _public_key())
    assert (report.events, report.checkpoints, report.last_seq) == (2, 1, 2)


def test_when_checkpoint_time_is_altered_then_signature_fails() -> None:
    forged = {**VECTOR["checkpoint"], "time": "2025-06-01T09:00:03.000Z"}
    with pytest.raises(VerificationFailed):
        verify_checkpoint_signature(forged, _public_key())


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(st.text().filter(lambda k: k != "hash"), _json_values, max_size=8))
def test_canonical_bytes_are_exactly_json_dumps_with_the_documented_settings(obj: dict) -> None:
    """The log encodes with json's C encoder built once; it must equal the documented rule."""
    expected = json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode("utf-8")
    assert canonical_bytes(obj) == expected
