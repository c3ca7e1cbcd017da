"""An independent implementation of the token construction, for tests only.

Written from docs/tokens.md with hashlib/hmac and a hand-written HKDF (RFC 5869), so it
shares no code with pseudogate.core.tokens.
"""

from __future__ import annotations

import base64
import hashlib
import hmac


def hkdf_sha256(ikm: bytes, *, info: bytes, salt: bytes = b"", length: int = 32) -> bytes:
    """RFC 5869: extract (an empty salt means HashLen zero bytes), then expand."""
    prk = hmac.new(salt or b"\x00" * 32, ikm, hashlib.sha256).digest()
    okm = b""
    block = b""
    counter = 1
    while len(okm) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        okm += block
        counter += 1
    return okm[:length]


def token(*, key_id: str, key: bytes, domain: str, normalised: str) -> str:
    derived = hkdf_sha256(key, info=("pseudogate/v1/domain/" + domain).encode("utf-8"))
    mac = hmac.new(derived, normalised.encode("utf-8"), hashlib.sha256).digest()
    return key_id + "_" + base64.b32encode(mac[:20]).decode("ascii").rstrip("=").lower()
