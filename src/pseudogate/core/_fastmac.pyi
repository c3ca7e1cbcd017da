"""Types of the optional C accelerator built from _fastmac.c (loaded through _accel.py)."""

from collections.abc import Callable, Iterable, Sequence
from typing import NoReturn, final

from typing_extensions import Buffer

@final
class HmacSha256:
    """HMAC-SHA256 under one key, producing tokens (prefix + lowercase base32 of 20 bytes)."""

    def __init__(self, key: Buffer) -> None: ...
    def tokens(self, prefix: str, values: Iterable[str], /) -> list[str]: ...
    def __reduce__(self) -> NoReturn: ...

def nhs_normalise(
    values: Sequence[object], /
) -> tuple[list[str | None], list[tuple[int, int]]]: ...
def encode_column(
    kind: int,
    values: Iterable[object],
    mac: HmacSha256,
    spec: Callable[[str], tuple[int, list[str], list[str | None], object]],
    out: Buffer,
    record_bytes: int,
    offset: int,
    seg_len: int,
    m: int,
    k: int,
    cache: Buffer | None,
    codes: Buffer,
    nicknames: dict[str, str],
    abbreviations: dict[str, str],
    /,
) -> list[object]: ...
def block_keys(
    mac: HmacSha256,
    out: Buffer,
    record_bytes: int,
    offset: int,
    components: tuple[tuple[Buffer, list[object]] | None, ...],
    /,
) -> None: ...
def sha256_backend() -> str: ...
def use_portable_sha256(flag: object, /) -> None: ...
