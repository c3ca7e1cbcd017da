"""Cluster tokens (docs/linkage.md, "Representative tokens"): the published vectors recomputed
by the independent implementation and by the keyring, whose key bytes never show."""

from __future__ import annotations

import base64
import importlib.util
import json
import pickle
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from pseudogate.core.keyring import CLUSTER_INFO, Keyring
from pseudogate.gateway.clusters import cluster_message

ROOT = Path(__file__).resolve().parents[2]
VECTORS: list[dict[str, Any]] = json.loads(
    (ROOT / "docs" / "test-vectors" / "encodings.json").read_text(encoding="utf-8"))


def _independent() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "make_encoding_vectors", ROOT / "tools" / "make_encoding_vectors.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


INDEPENDENT = _independent()


def _keyring(vector: dict[str, Any]) -> Keyring:
    return Keyring.from_document({"version": 1, "keys": [{
        "id": vector["key_id"], "purpose": "linkage", "status": "primary",
        "created": "2025-01-01T00:00:00Z", "material": vector["key_b64"],
    }]})


def test_the_cluster_sub_key_info_is_the_documented_one() -> None:
    assert CLUSTER_INFO == "pseudogate/v1/encoding/pg-fbf-v1/cluster"
    assert "pseudogate/v1/encoding/pg-fbf-v1/cluster" in (
        ROOT / "docs" / "linkage.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("vector", VECTORS, ids=[str(v["cluster"]["row"]) for v in VECTORS])
def test_when_a_cluster_token_is_recomputed_then_both_implementations_give_the_vector(
    vector: dict[str, Any],
) -> None:
    cluster = vector["cluster"]
    record = bytes.fromhex(vector["record_hex"])
    key = base64.b64decode(vector["key_b64"])
    assert INDEPENDENT.cluster_token(key, vector["key_id"], cluster["dataset"], cluster["row"],
                                     record) == cluster["token"]
    tokeniser = _keyring(vector).linkage_cluster_tokeniser()
    message = cluster_message(cluster["dataset"], cluster["row"], record)
    assert tokeniser.token(message) == cluster["token"]
    assert tokeniser.tokens([message]) == [cluster["token"]]


def test_when_the_cluster_tokeniser_is_shown_or_pickled_then_no_key_bytes_leave() -> None:
    vector = VECTORS[0]
    tokeniser = _keyring(vector).linkage_cluster_tokeniser()
    assert repr(tokeniser) == f"Tokeniser(key_id={vector['key_id']!r}, label='encoding/cluster')"
    with pytest.raises(TypeError):
        pickle.dumps(tokeniser)
    assert not [n for n in dir(tokeniser) if "key" in n.lower() and n != "key_id"]


def test_when_a_row_or_dataset_differs_then_identical_records_get_different_tokens() -> None:
    tokeniser = _keyring(VECTORS[0]).linkage_cluster_tokeniser()
    empty = bytes(251)  # two people with no identity fields at all are not one person
    tokens = {tokeniser.token(cluster_message(d, r, empty)) for d in ("a", "b") for r in (1, 2)}
    assert len(tokens) == 4
