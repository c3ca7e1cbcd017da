"""Extract manifests: the content hash and the Ed25519 signature an auditor can recompute.

Content hash (``content_sha256``): SHA-256 over the header and then every row in order, each
written as ``json.dumps(cells, ensure_ascii=False, separators=(",", ":")) + "\\n"`` in UTF-8,
where cells are the strings the CSV form of the extract holds ("" for missing).

Signature: Ed25519 over ``json.dumps(manifest_without_signature, sort_keys=True,
separators=(",", ":"), ensure_ascii=False).encode("utf-8")``, stored as standard padded base64.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from pseudogate.core.errors import InvalidInput, VerificationFailed

__all__ = [
    "MANIFEST_FIELDS",
    "ContentHasher",
    "content_sha256",
    "load_public_key_pem",
    "load_public_keys_pem",
    "sign_manifest",
    "signing_bytes",
    "verify_manifest_signature",
]

MANIFEST_FIELDS: tuple[str, ...] = (
    "project",
    "datasets",
    "policy_fingerprint",
    "key_ids",
    "optout_snapshot",
    "optouts_removed",
    "rows",
    "k_achieved",
    "l_achieved",
    "suppressed",
    "loss",
    "created_at",
    "content_sha256",
    "signature",
)


def _line(cells: Sequence[str]) -> bytes:
    return (json.dumps(list(cells), ensure_ascii=False, separators=(",", ":")) + "\n").encode(
        "utf-8"
    )


class ContentHasher:
    """Incremental content hash: feed the header, then rows in order (streams stay bounded)."""

    def __init__(self, header: Sequence[str]) -> None:
        self._h = hashlib.sha256(_line(header))

    def update_rows(self, rows: Iterable[Sequence[str]]) -> None:
        update = self._h.update
        for row in rows:
            update(_line(row))

    def hexdigest(self) -> str:
        return self._h.hexdigest()


def content_sha256(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """The extract's content hash (lowercase hex)."""
    hasher = ContentHasher(header)
    hasher.update_rows(rows)
    return hasher.hexdigest()


def signing_bytes(manifest: Mapping[str, Any]) -> bytes:
    """The bytes the signature covers: every field but ``signature``, canonical JSON."""
    body = {k: v for k, v in manifest.items() if k != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def sign_manifest(manifest: Mapping[str, Any], sign: Any) -> dict[str, Any]:
    """Return the manifest with ``signature`` added; ``sign`` is a ``Signer.sign`` callable."""
    signed = dict(manifest)
    signed["signature"] = base64.b64encode(sign(signing_bytes(manifest))).decode("ascii")
    return signed


def load_public_key_pem(pem: bytes | str) -> Ed25519PublicKey:
    """Parse a PEM SubjectPublicKeyInfo Ed25519 public key."""
    data = pem.encode("ascii") if isinstance(pem, str) else pem
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError:
        raise InvalidInput("public key is not a PEM SubjectPublicKeyInfo") from None
    if not isinstance(key, Ed25519PublicKey):
        raise InvalidInput("public key is not an Ed25519 key")
    return key


_PEM_BLOCK = re.compile(
    rb"-----BEGIN PUBLIC KEY-----\r?\n.*?-----END PUBLIC KEY-----", re.DOTALL
)


def load_public_keys_pem(pem: bytes | str) -> list[Ed25519PublicKey]:
    """Every Ed25519 public key in a PEM file: one key, or a bundle of several (concatenated
    ``keys public`` outputs from before and after a rotation of the signing key)."""
    data = pem.encode("ascii") if isinstance(pem, str) else pem
    blocks = _PEM_BLOCK.findall(data)
    if not blocks:
        raise InvalidInput("public key is not a PEM SubjectPublicKeyInfo")
    return [load_public_key_pem(block) for block in blocks]


def verify_manifest_signature(manifest: Mapping[str, Any], public_key: Ed25519PublicKey) -> None:
    """Raise :class:`VerificationFailed` unless ``signature`` signs the manifest's other fields."""
    sig = manifest.get("signature")
    if not isinstance(sig, str):
        raise VerificationFailed("manifest has no signature")
    try:
        raw = base64.b64decode(sig, validate=True)
        public_key.verify(raw, signing_bytes(manifest))
    except (binascii.Error, ValueError, InvalidSignature):
        raise VerificationFailed("manifest signature does not verify under the public key") from None
