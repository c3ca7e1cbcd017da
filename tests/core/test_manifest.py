"""The typed manifest: JSON round trips, and malformed received manifests refused by field."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from pseudogate.core.errors import InvalidInput, VerificationFailed
from pseudogate.core.linkage_method import Linkage, LinkageMethod
from pseudogate.core.manifest import (
    FEW_OPTOUTS,
    MANIFEST_FIELDS,
    DatasetVersion,
    Manifest,
    ManifestKeyIds,
    verify_manifest_signature,
)

_counts = st.integers(min_value=0, max_value=2**53)
_text = st.text(max_size=40)

manifests = st.builds(
    Manifest,
    project=_text,
    datasets=st.lists(st.builds(DatasetVersion, name=_text, version=_counts), max_size=4).map(
        tuple
    ),
    policy_fingerprint=_text,
    key_ids=st.builds(ManifestKeyIds, linkage=_text, project=_text, signing=_text),
    optout_snapshot=st.none() | _counts,
    optouts_removed=st.just(FEW_OPTOUTS) | st.integers(min_value=10, max_value=2**40),
    rows=_counts,
    k_achieved=st.none() | _counts,
    l_achieved=st.none() | _counts,
    suppressed=_counts,
    loss=st.floats(allow_nan=False, allow_infinity=False) | _counts,
    created_at=_text,
    content_sha256=_text,
    signature=st.none() | _text,
    linkage=st.none() | st.just(Linkage()) | st.builds(
        Linkage, method=st.just(LinkageMethod.PROBABILISTIC),
        threshold=st.floats(min_value=0.001, max_value=0.999), encoding=st.just("pg-fbf-v1"),
    ),
)


@given(manifests)
def test_when_a_manifest_goes_through_json_then_it_comes_back_equal(manifest: Manifest) -> None:
    text = manifest.to_json()
    assert Manifest.from_json(text) == manifest
    assert Manifest.from_json(text).to_json() == text
    assert list(json.loads(text)) == [
        f for f in MANIFEST_FIELDS
        if (f != "signature" or manifest.signature is not None)
        and (f != "linkage" or manifest.linkage is not None)
    ]


def _sample() -> dict[str, Any]:
    return {
        "project": "p1",
        "datasets": [{"name": "gp", "version": 1}],
        "policy_fingerprint": "ab" * 32,
        "key_ids": {"linkage": "lk1", "project": "pk1", "signing": "sk1"},
        "optout_snapshot": None,
        "optouts_removed": "<10",
        "rows": 3,
        "k_achieved": 2,
        "l_achieved": None,
        "suppressed": 0,
        "loss": 0,
        "created_at": "2025-06-01T12:00:00Z",
        "content_sha256": "cd" * 32,
        "signature": "AAAA",
    }


def test_when_loss_is_an_integer_then_it_stays_one_so_the_signed_bytes_do_not_change() -> None:
    text = json.dumps(_sample(), separators=(",", ":"))
    manifest = Manifest.from_json(text)
    assert manifest.to_json() == text and b'"loss":0,' in manifest.signing_bytes()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"rows": -1}, "'rows' is malformed"),
        ({"rows": True}, "'rows' is malformed"),
        ({"rows": "3"}, "'rows' is malformed"),
        ({"k_achieved": 1.5}, "'k_achieved' is malformed"),
        ({"optouts_removed": 3}, "'optouts_removed' is malformed"),
        ({"optouts_removed": "943 476 5919"}, "'optouts_removed' is malformed"),
        ({"datasets": [{"name": "gp"}]}, "'datasets' is malformed"),
        ({"datasets": [{"name": "gp", "version": -2}]}, "'datasets' is malformed"),
        ({"datasets": {"gp": 1}}, "'datasets' is malformed"),
        ({"key_ids": {"linkage": "lk1", "project": "pk1"}}, "'key_ids' is malformed"),
        ({"key_ids": ["lk1"]}, "'key_ids' is malformed"),
        ({"loss": "0.5"}, "'loss' is malformed"),
        ({"project": 943_476_5919}, "'project' is malformed"),
        ({"signature": 1}, "'signature' is malformed"),
        ({"943 476 5919": "jane@example.org"}, "1 unknown field(s)"),
    ],
)
def test_when_a_received_manifest_is_malformed_then_it_is_refused_naming_the_field(
    change: dict[str, Any], message: str
) -> None:
    text = json.dumps({**_sample(), **change})
    with pytest.raises(InvalidInput) as refused:
        Manifest.from_json(text)
    assert message in str(refused.value)
    assert "943" not in str(refused.value) and "jane" not in str(refused.value)


@pytest.mark.parametrize(
    "text",
    ["", "[1]", "null", '{"rows": NaN}', "[" * 100_000, b"\xff"],
)
def test_when_a_received_manifest_is_not_a_json_object_then_it_is_invalid_input(
    text: str | bytes,
) -> None:
    with pytest.raises(InvalidInput, match="manifest is not"):
        Manifest.from_json(text)


def test_when_a_field_is_missing_then_the_manifest_is_refused_naming_it() -> None:
    body = _sample()
    del body["rows"], body["loss"]
    with pytest.raises(InvalidInput, match="lacks field\\(s\\): rows, loss"):
        Manifest.from_json(json.dumps(body))


def test_when_non_finite_loss_arrives_then_it_is_refused() -> None:
    with pytest.raises(InvalidInput, match="not JSON"):
        Manifest.from_json(json.dumps({**_sample(), "loss": float("inf")}))


def test_when_unsigned_then_verification_fails_and_signed_verifies() -> None:
    key = Ed25519PrivateKey.generate()
    body = {k: v for k, v in _sample().items() if k != "signature"}
    unsigned = Manifest.from_json(json.dumps(body))
    assert unsigned.signature is None and "signature" not in unsigned.to_json_dict()
    with pytest.raises(VerificationFailed, match="no signature"):
        verify_manifest_signature(unsigned, key.public_key())
    signed = unsigned.signed(key.sign)
    verify_manifest_signature(Manifest.from_json(signed.to_json()), key.public_key())
    altered = Manifest.from_json(signed.to_json().replace('"rows":3', '"rows":4'))
    with pytest.raises(VerificationFailed, match="does not verify"):
        verify_manifest_signature(altered, key.public_key())


@pytest.mark.parametrize(
    "linkage",
    [
        {"method": "exact", "threshold": 0.5},
        {"method": "probabilistic", "threshold": 0.5},
        {"method": "probabilistic", "threshold": 1.0, "encoding": "pg-fbf-v1"},
        {"method": "probabilistic", "threshold": True, "encoding": "pg-fbf-v1"},
        {"method": "probabilistic", "threshold": "0.5", "encoding": "pg-fbf-v1"},
        {"method": "probabilistic", "threshold": 0.5, "encoding": ""},
        {"method": "fuzzy"},
        {"method": "943 476 5919"},
        "exact",
        None,
    ],
)
def test_when_a_received_linkage_field_is_malformed_then_it_is_refused_naming_it(
    linkage: object,
) -> None:
    with pytest.raises(InvalidInput) as refused:
        Manifest.from_json(json.dumps({**_sample(), "linkage": linkage}))
    assert str(refused.value) == "manifest field 'linkage' is malformed"


def test_when_the_linkage_field_is_signed_then_changing_it_breaks_the_signature() -> None:
    key = Ed25519PrivateKey.generate()
    body = {k: v for k, v in _sample().items() if k != "signature"}
    body["linkage"] = {"method": "probabilistic", "threshold": 0.5, "encoding": "pg-fbf-v1"}
    signed = Manifest.from_json(json.dumps(body)).signed(key.sign)
    assert signed.linkage == Linkage(LinkageMethod.PROBABILISTIC, 0.5, "pg-fbf-v1")
    assert b'"linkage":{"encoding":"pg-fbf-v1","method":"probabilistic","threshold":0.5}' in (
        signed.signing_bytes())
    verify_manifest_signature(Manifest.from_json(signed.to_json()), key.public_key())
    altered = Manifest.from_json(signed.to_json().replace('"threshold":0.5', '"threshold":0.9'))
    with pytest.raises(VerificationFailed, match="does not verify"):
        verify_manifest_signature(altered, key.public_key())


def test_when_a_manifest_predates_the_linkage_field_then_it_parses_without_one() -> None:
    text = json.dumps(_sample(), separators=(",", ":"))
    manifest = Manifest.from_json(text)
    assert manifest.linkage is None and manifest.to_json() == text


@pytest.mark.parametrize(
    ("method", "threshold", "encoding"),
    [
        (LinkageMethod.EXACT, 0.5, None),
        (LinkageMethod.EXACT, None, "pg-fbf-v1"),
        (LinkageMethod.PROBABILISTIC, None, "pg-fbf-v1"),
        (LinkageMethod.PROBABILISTIC, 0.0, "pg-fbf-v1"),
        (LinkageMethod.PROBABILISTIC, 0.5, None),
    ],
)
def test_when_a_linkage_is_inconsistent_then_it_cannot_be_built(
    method: LinkageMethod, threshold: float | None, encoding: str | None
) -> None:
    with pytest.raises(InvalidInput):
        Linkage(method, threshold, encoding)
