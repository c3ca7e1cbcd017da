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

from pseudogate.core.errors import FailedPrecondition, InvalidInput
from pseudogate.core.nhs import valid_check_digits
from pseudogate.core.normalise import Kind, Reason, normalise_many
from pseudogate.core.tokens import Tokeniser

__all__ = [
    "INVALID_UTF8",
    "as_text",
    "invalid_utf8_rows",
    "normalise_array",
    "token_array",
    "tokenise_array",
    "valid_text",
]

#: The row-error reason for a value whose bytes are not UTF-8 (Arrow IPC does not check them).
INVALID_UTF8 = "invalid_utf8"


def _contiguous_text(array: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks() if array.num_chunks != 1 else array.chunk(0)
    if array.null_count:
        array = pc.fill_null(array, "")
    return array


def as_text(array: pa.Array | pa.ChunkedArray) -> pa.Array:
    """One contiguous utf8 array with nulls replaced by "" (null and empty are both missing).

    For stored data: a version written before submissions were checked for UTF-8 may hold
    bytes that are not, which would fail later conversions obscurely; refuse it clearly.
    """
    text = _contiguous_text(array)
    if invalid_utf8_rows(text):
        raise FailedPrecondition(
            "a stored dataset holds bytes that are not UTF-8 (it was stored before submissions "
            "were checked): resubmit it"
        )
    return text


def invalid_utf8_rows(array: pa.Array) -> list[int]:
    """0-based indices of the values of a utf8 array whose bytes are not valid UTF-8.

    Arrow does not validate utf8 data read from IPC, and one bad value makes every later
    conversion to Python fail; so validate in one vectorised pass and look at single values
    only when that pass fails.
    """
    try:
        array.validate(full=True)
        return []
    except pa.ArrowInvalid:
        pass
    try:
        array.validate()  # the layout (offsets within the data) must be sound to read values
    except pa.ArrowInvalid:
        raise InvalidInput("a utf8 column is malformed (its offsets are invalid)") from None
    rows: list[int] = []
    for i, raw in enumerate(array.view(pa.binary()).to_pylist()):
        if raw is None:
            continue
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            rows.append(i)
    if not rows:
        raise InvalidInput("a utf8 column is malformed (Arrow validation failed)")
    return rows


def valid_text(array: pa.Array | pa.ChunkedArray) -> tuple[pa.Array, list[int]]:
    """``as_text(array)`` with values that are not UTF-8 replaced by "", and their indices.

    Callers report the indices as ``invalid_utf8`` row errors and may still process the other
    rows (so that one submission attempt shows every invalid row).
    """
    text = _contiguous_text(array)
    bad = invalid_utf8_rows(text)
    if bad:
        mask = np.zeros(len(text), dtype=bool)
        mask[bad] = True
        text = pc.if_else(pa.array(mask), pa.scalar("", pa.string()), text)
    return text, bad


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


def _nhs_fast(values: pa.Array) -> tuple[pa.Array, list[tuple[int, Reason]]]:
    """``normalise_many(NHS_NUMBER, values)`` for an Arrow array, vectorised where possible."""
    plain = pc.and_(
        pc.equal(pc.binary_length(values), 10), pc.match_substring_regex(values, r"^[0-9]{10}$")
    ).to_numpy(zero_copy_only=False)
    errors: list[tuple[int, Reason]] = []
    ok = np.zeros(len(values), dtype=bool)
    plain_idx = np.flatnonzero(plain)
    if len(plain_idx):
        chosen = values.take(pa.array(plain_idx)) if len(plain_idx) != len(values) else values
        offsets = np.frombuffer(chosen.buffers()[1], dtype=np.int32)[
            chosen.offset : chosen.offset + len(chosen) + 1
        ]
        data = np.frombuffer(chosen.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[-1]]
        digits = data.reshape(-1, 10).astype(np.int64) - 48
        good = valid_check_digits(digits)
        ok[plain_idx[good]] = True
        errors.extend((int(i), Reason.INVALID_CHECK_DIGIT) for i in plain_idx[~good])
    result = pc.if_else(pa.array(ok), values, pa.scalar(None, pa.string()))
    other_idx = np.flatnonzero(~plain)
    if len(other_idx):
        others = values.take(pa.array(other_idx)).to_pylist()
        normalised, errs = normalise_many(Kind.NHS_NUMBER, others)
        mask = np.zeros(len(values), dtype=bool)
        mask[other_idx] = True
        result = pc.replace_with_mask(result, pa.array(mask), pa.array(normalised, pa.string()))
        errors.extend((int(other_idx[j]), reason) for j, reason in errs)
    errors.sort()
    return result, errors


def normalise_array(kind: Kind, values: pa.Array) -> tuple[pa.Array, list[tuple[int, Reason]]]:
    """Normalise a utf8 array without nulls: (normalised, null where invalid; [(index, reason)])."""
    if kind is Kind.NHS_NUMBER:
        return _nhs_fast(values)
    normalised, errors = normalise_many(kind, values.to_pylist())
    return pa.array(normalised, type=pa.string()), errors


def tokenise_array(
    values: pa.Array, *, kind: Kind, tokeniser: Tokeniser
) -> tuple[pa.Array, list[tuple[int, str]]]:
    """Tokens for a utf8 array (no nulls), and [(row index, reason)] for invalid values.

    Invalid rows get "" in the returned array; callers refuse the whole submission anyway.
    """
    encoded = pc.dictionary_encode(values)
    distinct: pa.Array = encoded.dictionary
    normalised, errs = normalise_array(kind, distinct)
    # Different raw spellings of one value normalise alike: tokenise each normalised value once.
    by_value = pc.dictionary_encode(normalised)
    tokens_of_values = token_array(tokeniser.tokens(by_value.dictionary.to_pylist()))
    per_distinct = tokens_of_values.take(by_value.indices)
    tokens = pc.fill_null(per_distinct.take(encoded.indices), "")
    row_errors: list[tuple[int, str]] = []
    if errs:
        raw = distinct.to_pylist()
        reasons = {i: (Reason.EMPTY if raw[i] == "" else r) for i, r in errs}
        codes = encoded.indices.to_numpy(zero_copy_only=False)
        bad = np.fromiter(reasons.keys(), dtype=codes.dtype, count=len(reasons))
        rows = np.flatnonzero(np.isin(codes, bad))
        row_errors = [(int(r), str(reasons[int(codes[r])])) for r in rows]
    return tokens, row_errors
