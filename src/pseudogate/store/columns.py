"""Column-wise tokenisation of Arrow arrays: normalise, tokenise each distinct value once.

Providers' data repeat people (a GP system sends many rows per patient), so every distinct
raw value is normalised and tokenised once and the tokens are spread back with ``take``. NHS
numbers that are already 10 ASCII digits (the bulk case) skip the per-value normaliser: their
check digits are verified in one vectorised step, exactly as ``normalise_many`` would.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pseudogate.normalise import Kind, Reason, normalise_many
from pseudogate.tokens import Tokeniser

__all__ = ["as_text", "token_array", "tokenise_array"]

_NHS_WEIGHTS = np.arange(10, 1, -1, dtype=np.int64)


def as_text(array: pa.Array | pa.ChunkedArray) -> pa.Array:
    """One contiguous utf8 array with nulls replaced by "" (null and empty are both missing)."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks() if array.num_chunks != 1 else array.chunk(0)
    if array.null_count:
        array = pc.fill_null(array, "")
    return array


def token_array(tokens: list[str]) -> pa.Array:
    """A utf8 Arrow array of tokens (built from one buffer when they share a length)."""
    n = len(tokens)
    if n == 0:
        return pa.array([], type=pa.string())
    width = len(tokens[0])
    data = "".join(tokens).encode("utf-8")
    if width == 0 or len(data) != n * width or not data.isascii():
        return pa.array(tokens, type=pa.string())
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
    return pa.Array.from_buffers(
        pa.string(), n, [None, pa.py_buffer(offsets.tobytes()), pa.py_buffer(data)]
    )


def _nhs_fast(values: pa.Array) -> tuple[list[str | None], list[tuple[int, Reason]]]:
    """``normalise_many(NHS_NUMBER, values)`` for an Arrow array, vectorised where possible."""
    n = len(values)
    lengths = pc.utf8_length(values).to_numpy(zero_copy_only=False)
    plain = (lengths == 10) & pc.match_substring_regex(values, r"^[0-9]{10}$").to_numpy(
        zero_copy_only=False
    )
    out: list[str | None] = [None] * n
    errors: list[tuple[int, Reason]] = []
    plain_idx = np.flatnonzero(plain)
    if len(plain_idx):
        chosen = values.take(pa.array(plain_idx)) if len(plain_idx) != n else values
        offsets = np.frombuffer(chosen.buffers()[1], dtype=np.int32)[
            chosen.offset : chosen.offset + len(chosen) + 1
        ]
        data = np.frombuffer(chosen.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[-1]]
        digits = (data.reshape(-1, 10).astype(np.int64)) - 48
        check = 11 - (digits[:, :9] @ _NHS_WEIGHTS) % 11
        check[check == 11] = 0
        ok = check == digits[:, 9]
        texts = chosen.to_pylist()
        for j, i in enumerate(plain_idx.tolist()):
            if ok[j]:
                out[i] = texts[j]
            else:
                errors.append((i, Reason.INVALID_CHECK_DIGIT))
    other_idx = np.flatnonzero(~plain)
    if len(other_idx):
        others = values.take(pa.array(other_idx)).to_pylist()
        normalised, errs = normalise_many(Kind.NHS_NUMBER, others)
        idx = other_idx.tolist()
        for j, v in enumerate(normalised):
            out[idx[j]] = v
        errors.extend((idx[j], reason) for j, reason in errs)
        errors.sort()
    return out, errors


def normalise_array(kind: Kind, values: pa.Array) -> tuple[list[str | None], list[tuple[int, Reason]]]:
    """Normalise an Arrow utf8 array (no nulls): (normalised or None, [(index, reason)])."""
    if kind is Kind.NHS_NUMBER:
        return _nhs_fast(values)
    return normalise_many(kind, values.to_pylist())


def tokenise_array(
    values: pa.Array, *, kind: Kind, tokeniser: Tokeniser
) -> tuple[pa.Array, list[tuple[int, str]]]:
    """Tokens for a utf8 array (no nulls), and [(row index, reason)] for invalid values.

    Invalid rows get "" in the returned array; callers refuse the whole submission anyway.
    """
    encoded = pc.dictionary_encode(values)
    distinct: pa.Array = encoded.dictionary
    indices = encoded.indices
    normalised, errs = normalise_array(kind, distinct)
    empty = {i for i, v in enumerate(distinct.to_pylist()) if v == ""} if errs else set()
    reasons = {i: (Reason.EMPTY if i in empty else r) for i, r in errs}
    # Different raw spellings of one value normalise alike: tokenise each normalised value once.
    unique_norm = list(dict.fromkeys(v for v in normalised if v is not None))
    made_tokens = tokeniser.tokens(unique_norm)
    if len(unique_norm) == len(normalised):  # no invalid value, no two spellings of one value
        per_distinct = made_tokens
    else:
        made = dict(zip(unique_norm, made_tokens, strict=True))
        per_distinct = [made[v] if v is not None else "" for v in normalised]
    tokens = token_array(per_distinct).take(indices)
    row_errors: list[tuple[int, str]] = []
    if reasons:
        codes = indices.to_numpy(zero_copy_only=False)
        bad = np.fromiter(reasons.keys(), dtype=codes.dtype, count=len(reasons))
        rows = np.flatnonzero(np.isin(codes, bad))
        row_errors = [(int(r), str(reasons[int(codes[r])])) for r in rows]
    return tokens, row_errors
