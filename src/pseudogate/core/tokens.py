"""The token construction (the auditors' contract, docs/tokens.md).

    K_d   = HKDF-SHA256(IKM=K, salt=empty, info=UTF-8("pseudogate/v1/domain/" + domain), L=32)
    mac   = HMAC-SHA256(K_d, UTF-8(v))
    token = key_id + "_" + lowercase(unpadded RFC 4648 base32(mac[0:20]))

Project tokens use info ``"pseudogate/v1/project/" + project_id`` and take the full linkage
token as ``v``. A :class:`Tokeniser` holds its derived key only inside an HMAC state: it has no
getter, no repr of the key, and refuses pickling.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

import numpy as np
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from numpy.typing import NDArray

from pseudogate.core._accel import fastmac

if TYPE_CHECKING:
    from pseudogate.core._fastmac import HmacSha256

__all__ = [
    "DOMAIN_INFO_PREFIX",
    "PROJECT_INFO_PREFIX",
    "TOKEN_BYTES",
    "ShippedKey",
    "Tokeniser",
    "derive_key",
]

DOMAIN_INFO_PREFIX = "pseudogate/v1/domain/"
PROJECT_INFO_PREFIX = "pseudogate/v1/project/"
TOKEN_BYTES = 20  # 160 bits: 32 base32 characters, no padding
_TOKEN_CHARS = 32


def derive_key(material: bytes, info: str) -> bytes:
    """HKDF-SHA256 with an empty salt and 32 bytes of output (RFC 5869)."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info.encode("utf-8")).derive(
        material
    )


class Tokeniser:
    """Makes tokens for one (key, derivation) pair. Built by the keyring, never by hand.

    Batches go through the C accelerator when it is built (same construction, see _fastmac.c);
    otherwise through ``hmac`` with the key state computed once and one base32 call per batch.
    """

    __slots__ = ("_fast", "_prefix", "_state", "key_id", "label")

    def __init__(self, *, key_id: str, label: str, derived_key: bytes) -> None:
        self.key_id = key_id
        self.label = label  # e.g. "domain/person": what the key was derived for
        self._prefix = key_id + "_"
        self._state = hmac.new(derived_key, digestmod=hashlib.sha256)
        self._fast: HmacSha256 | None = (
            fastmac.HmacSha256(derived_key) if fastmac is not None else None
        )

    def __repr__(self) -> str:
        return f"Tokeniser(key_id={self.key_id!r}, label={self.label!r})"

    def __reduce__(self) -> NoReturn:
        raise TypeError("Tokeniser holds key material and cannot be pickled")

    def token(self, value: str) -> str:
        """Token of one already-normalised value."""
        if self._fast is not None:
            return self._fast.tokens(self._prefix, (value,))[0]
        mac = self._state.copy()
        mac.update(value.encode("utf-8"))
        return self._prefix + base64.b32encode(mac.digest()[:TOKEN_BYTES]).decode("ascii").lower()

    def tokens(self, values: Sequence[str] | Iterable[str]) -> list[str]:
        """Tokens of many already-normalised values."""
        if self._fast is not None:
            return self._fast.tokens(self._prefix, values)
        return self._tokens_python(values)

    def _tokens_python(self, values: Sequence[str] | Iterable[str]) -> list[str]:
        """The pure-Python path (one base32 call for the whole batch)."""
        copy = self._state.copy
        macs = bytearray()
        n = 0
        for v in values:
            m = copy()
            m.update(v.encode("utf-8"))
            macs += m.digest()[:TOKEN_BYTES]
            n += 1
        if n == 0:
            return []
        encoded = _b32_lower(bytes(macs))
        prefix = self._prefix
        step = _TOKEN_CHARS
        return [prefix + encoded[i : i + step] for i in range(0, n * step, step)]


class ShippedKey:
    """One derived key packed to travel to a batch worker (a Dask worker) for one job.

    The only key object that pickles, on purpose: it holds the *derived* key of one
    (key, domain) pair, never the keyring's key, so a worker that keeps it can make tokens of
    that domain under that key id and nothing else (docs/keys.md, "Keys on a Dask cluster").
    Built by :meth:`pseudogate.core.keyring.Keyring.linkage_key_to_ship`; the worker turns it
    into a :class:`Tokeniser` with :meth:`tokeniser`. Its repr shows no key bytes.
    """

    __slots__ = ("_derived", "key_id", "label")

    def __init__(self, *, key_id: str, label: str, derived_key: bytes) -> None:
        self.key_id = key_id
        self.label = label
        self._derived = derived_key

    def __repr__(self) -> str:
        return f"ShippedKey(key_id={self.key_id!r}, label={self.label!r})"

    def __reduce__(self) -> tuple[Any, tuple[str, str, bytes]]:
        return (_unpack_shipped, (self.key_id, self.label, self._derived))

    def tokeniser(self) -> Tokeniser:
        """The tokeniser of this derived key (same tokens as the keyring's own)."""
        return Tokeniser(key_id=self.key_id, label=self.label, derived_key=self._derived)


def _unpack_shipped(key_id: str, label: str, derived_key: bytes) -> ShippedKey:
    return ShippedKey(key_id=key_id, label=label, derived_key=derived_key)


_B32_ALPHABET = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz234567", dtype=np.uint8)
_B32_SHIFTS = np.arange(35, -1, -5, dtype=np.uint64)


def _b32_lower(data: bytes) -> str:
    """Lowercase RFC 4648 base32 of ``data`` (a multiple of 5 bytes), vectorised.

    Equal to ``base64.b32encode(data).decode().lower()`` (tested) and much faster on batches.
    """
    groups = np.frombuffer(data, dtype=np.uint8).reshape(-1, 5).astype(np.uint64)
    v = (
        (groups[:, 0] << np.uint64(32))
        | (groups[:, 1] << np.uint64(24))
        | (groups[:, 2] << np.uint64(16))
        | (groups[:, 3] << np.uint64(8))
        | groups[:, 4]
    )
    idx = (v[:, None] >> _B32_SHIFTS) & np.uint64(31)
    chars: NDArray[np.uint8] = _B32_ALPHABET[idx]
    return chars.tobytes().decode("ascii")
