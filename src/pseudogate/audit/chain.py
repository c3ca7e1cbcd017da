"""The hash chain and signed checkpoints: the whole construction an auditor recomputes.

- ``hash_0`` is 32 zero bytes.
- ``hash_i = SHA-256(hash_{i-1} || canonical_bytes(event_i))`` on raw 32-byte digests.
- ``canonical_bytes(event)`` is the UTF-8 of ``json.dumps(event without "hash", sort_keys=True,
  separators=(",", ":"), ensure_ascii=False)``.
- A checkpoint is ``{"seq", "hash", "time", "signature"}``: ``hash`` is the lowercase hex of
  ``hash_seq`` and ``signature`` the standard base64 Ed25519 signature over the canonical JSON
  (same rule) of ``{"seq", "hash", "time"}``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from pseudogate.core.errors import VerificationFailed

__all__ = [
    "CHECKPOINT_FIELDS",
    "GENESIS_HASH",
    "canonical_bytes",
    "checkpoint_signing_bytes",
    "make_checkpoint",
    "next_hash",
    "verify_checkpoint_signature",
]

GENESIS_HASH = bytes(32)
CHECKPOINT_FIELDS: tuple[str, ...] = ("seq", "hash", "time", "signature")


def _refuse(obj: Any) -> Any:
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def _make_c_encoder() -> Callable[[Any, int], Any] | None:
    """json's C encoder built once with exactly json.dumps' settings below, or None.

    json.dumps builds a new encoder on every call, and the log encodes one event per RPC.
    tests/audit/test_chain.py checks that both give identical bytes.
    """
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return None
    try:
        # (markers, default, encoder, indent, key_separator, item_separator, sort_keys,
        #  skipkeys, allow_nan), as json.JSONEncoder.iterencode passes them.
        encoder: Callable[[Any, int], Any] = make(
            None, _refuse, json.encoder.encode_basestring, None, ":", ",", True, False, True
        )
    except TypeError:  # another Python's signature: use json.dumps
        return None
    return encoder


_c_encoder = _make_c_encoder()


def _canonical(obj: Mapping[str, Any]) -> bytes:
    if _c_encoder is not None and type(obj) is dict:
        return "".join(_c_encoder(obj, 0)).encode("utf-8")
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def canonical_bytes(event: Mapping[str, Any]) -> bytes:
    """The bytes of an event that the chain covers: every field but ``hash``."""
    if "hash" in event:
        event = {k: v for k, v in event.items() if k != "hash"}
    return _canonical(event)


def next_hash(previous: bytes, canonical: bytes) -> bytes:
    """``SHA-256(previous || canonical)``: one link of the chain."""
    return hashlib.sha256(previous + canonical).digest()


def checkpoint_signing_bytes(seq: int, hash_hex: str, time: str) -> bytes:
    return _canonical({"seq": seq, "hash": hash_hex, "time": time})


def make_checkpoint(
    seq: int, head: bytes, time: str, sign: Callable[[bytes], bytes]
) -> dict[str, Any]:
    """A signed checkpoint of the chain head ``head`` at ``seq``; ``sign`` is ``Signer.sign``."""
    hash_hex = head.hex()
    signature = sign(checkpoint_signing_bytes(seq, hash_hex, time))
    return {
        "seq": seq,
        "hash": hash_hex,
        "time": time,
        "signature": base64.b64encode(signature).decode("ascii"),
    }


def verify_checkpoint_signature(
    checkpoint: Mapping[str, Any], public_key: Ed25519PublicKey
) -> None:
    """Raise :class:`VerificationFailed` unless the checkpoint's signature verifies."""
    try:
        raw = base64.b64decode(checkpoint["signature"], validate=True)
        public_key.verify(
            raw,
            checkpoint_signing_bytes(checkpoint["seq"], checkpoint["hash"], checkpoint["time"]),
        )
    except (binascii.Error, ValueError, TypeError, KeyError, InvalidSignature):
        raise VerificationFailed(
            f"checkpoint at seq {checkpoint.get('seq')}: signature does not verify"
        ) from None
