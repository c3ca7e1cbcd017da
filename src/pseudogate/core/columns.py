"""The one column pipeline: normalise, tokenise each distinct value once, spread tokens back.

Every entry point that turns a column of identifiers into tokens goes through :func:`_tokenise`:
Arrow columns (:func:`tokenise_column`: submissions, opt-outs, CSV files read by Arrow), Python
lists (:func:`tokenise_list`: the Tokenise RPC) and pandas Series (:func:`tokenise_series`:
anonymise). Providers' data repeat people (a GP system sends many rows per patient), so when a
sample of rows shows repeats, each distinct raw value is normalised and tokenised once and the
tokens are spread back by row. Normalisation and HMAC run in the C accelerator when it is built;
without it, NHS numbers in Arrow arrays that are already 10 ASCII digits (the bulk case) have
their check digits verified in one vectorised step, exactly as ``normalise_many`` would.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Generic, TypeAlias, TypeVar

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from pseudogate.core._accel import fastmac
from pseudogate.core.errors import FailedPrecondition, InvalidInput
from pseudogate.core.nhs import valid_check_digits
from pseudogate.core.normalise import Kind, Reason, normalise_many
from pseudogate.core.tokens import Tokeniser

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "INVALID_UTF8",
    "MIN_ROWS_TO_DEDUPLICATE",
    "TokenisedColumn",
    "as_text",
    "invalid_utf8_rows",
    "normalise_array",
    "rekey_tokens",
    "token_array",
    "tokenise_column",
    "tokenise_list",
    "tokenise_series",
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
    """A utf8 Arrow array of tokens.

    Arrow's own conversion: measured about twice as fast as joining the tokens into one buffer
    (pyarrow 26, 1,000,000 tokens: 49-54 ms against 87-100 ms).
    """
    return pa.array(tokens, type=pa.string())


def rekey_tokens(column: pa.Array, tokeniser: Tokeniser) -> pa.Array:
    """Each token replaced by ``tokeniser``'s token of it (an extract's linkage tokens become
    project tokens); empty cells stay empty. Each distinct token is computed once."""
    encoded = pc.dictionary_encode(column)
    distinct = encoded.dictionary
    rekeyed = token_array(tokeniser.tokens(distinct.to_pylist()))
    if pc.any(pc.equal(distinct, "")).as_py():
        rekeyed = pc.if_else(pc.equal(distinct, ""), "", rekeyed)
    return rekeyed.take(encoded.indices)


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


TokensT = TypeVar("TokensT")


@dataclass(frozen=True, slots=True)
class TokenisedColumn(Generic[TokensT]):
    """A column's tokens ("" where a value is invalid) and its row errors.

    ``errors`` are (0-based row, reason code), ascending by row; each caller numbers rows as its
    own contract says (the Tokenise RPC from 0, files and submissions from 1).
    """

    tokens: TokensT
    errors: list[tuple[int, str]]


def tokenise_column(
    values: pa.Array | pa.ChunkedArray, *, kind: Kind, tokeniser: Tokeniser
) -> TokenisedColumn[pa.Array]:
    """Tokens of a utf8 Arrow column (nulls count as "", i.e. missing), as a utf8 array.

    The one column pipeline (normalise, tokenise each distinct value once, spread back); the
    values must be valid UTF-8, as Arrow's CSV reader and :func:`valid_text` ensure.
    """
    done = _tokenise(_contiguous_text(values), kind=kind, tokeniser=tokeniser)
    return TokenisedColumn(done.as_arrow(), done.errors)


def tokenise_list(
    values: Sequence[str], *, kind: Kind, tokeniser: Tokeniser, max_chars: int | None = None
) -> TokenisedColumn[list[str]]:
    """:func:`tokenise_column` for a Python list (the Tokenise RPC's batches).

    A value that is not a str is a ``not_text`` error. With ``max_chars``, a value longer than
    that (in code points) is ``bad_format`` unless it is already invalid for another reason.
    """
    done = _tokenise(values, kind=kind, tokeniser=tokeniser, max_chars=max_chars)
    return TokenisedColumn(done.as_list(), done.errors)


def tokenise_series(
    values: pd.Series, *, kind: Kind, tokeniser: Tokeniser
) -> TokenisedColumn[npt.NDArray[np.object_]]:
    """:func:`tokenise_column` for a pandas Series of str (the anonymise path), as an object array."""
    done = _tokenise(values.to_numpy(dtype=object), kind=kind, tokeniser=tokeniser)
    return TokenisedColumn(done.as_numpy(), done.errors)


# --- the pipeline -------------------------------------------------------------------------------

#: Below this many rows, finding distinct values costs more than it can save.
MIN_ROWS_TO_DEDUPLICATE = 1_024
#: Deduplicate when at least this share of rows is estimated to repeat an earlier value. With
#: the C accelerator, hashing a row costs about a fifth of normalising and tokenising it, and
#: Python values also pay for a trip through Arrow and back (measured on the reference machine);
#: in pure Python a token costs ten times as much, so a few repeats pay.
_WORTH_IT_ARROW = 0.2
_WORTH_IT_PYTHON = 0.4
_WORTH_IT_PURE_PYTHON = 0.05
#: Rows sampled to decide: enough to expect about this many repeats at the threshold.
_REPEATS_AT_THRESHOLD = 25
_MAX_SAMPLE = 1 << 16
#: Fixed pseudo-random sample points in [0, 1): the decision is the same for the same column.
_SAMPLE_POINTS = np.random.default_rng(20261201).random(_MAX_SAMPLE)

_Values: TypeAlias = "pa.Array | Sequence[object]"


@dataclass(frozen=True, slots=True)
class _Tokenised:
    """Tokens of the distinct values, which distinct value each row holds (None when every
    row was taken as its own value), and the row errors."""

    tokens: list[str]
    codes: npt.NDArray[np.integer[Any]] | None
    errors: list[tuple[int, str]]

    def as_arrow(self) -> pa.Array:
        tokens = token_array(self.tokens)
        return tokens if self.codes is None else tokens.take(pa.array(self.codes))

    def as_list(self) -> list[str]:
        if self.codes is None:
            return self.tokens
        return np.asarray(self.tokens, dtype=object)[self.codes].tolist()  # type: ignore[no-any-return]

    def as_numpy(self) -> npt.NDArray[np.object_]:
        tokens = np.empty(len(self.tokens), dtype=object)
        tokens[:] = self.tokens
        return tokens if self.codes is None else tokens[self.codes]


def _tokenise(
    values: _Values,
    *,
    kind: Kind,
    tokeniser: Tokeniser,
    max_chars: int | None = None,
    deduplicate: bool | None = None,
) -> _Tokenised:
    """Normalise, tokenise each distinct raw value once, spread tokens and errors back to rows.

    A value tokenised twice gives the same token, so finding the distinct values only saves
    work; it costs a hash of every row, so it is done only when a sample of rows shows enough
    repeats (``deduplicate`` forces the choice; the tests compare both).
    """
    codes: npt.NDArray[np.integer[Any]] | None = None
    if deduplicate is None:
        deduplicate = _repeats_pay(values)
    if deduplicate:
        found = _distinct(values)
        if found is not None:
            values, codes = found
    normalised, reasons = _normalise(kind, values)
    if max_chars is not None:
        _refuse_long(values, max_chars, normalised, reasons)
    if reasons:
        valid = [v for v in normalised if v is not None]
        made = iter(tokeniser.tokens(valid))
        tokens = [next(made) if v is not None else "" for v in normalised]
    else:
        tokens = tokeniser.tokens(normalised)  # type: ignore[arg-type]  # no None without errors
    return _Tokenised(tokens, codes, _row_errors(reasons, codes))


def _repeats_pay(values: _Values) -> bool:
    """Whether enough rows repeat a value for deduplicating to pay, judged from a sample.

    m random rows of n hold about r * m**2 / n repeats when a share r of the rows repeats
    (more when values repeat many times), and none at all when every value is distinct; m is
    chosen to expect ``_REPEATS_AT_THRESHOLD`` at the threshold share.
    """
    n = len(values)
    if n < MIN_ROWS_TO_DEDUPLICATE:
        return False
    if fastmac is None:
        worth = _WORTH_IT_PURE_PYTHON
    else:
        worth = _WORTH_IT_ARROW if isinstance(values, pa.Array) else _WORTH_IT_PYTHON
    rows = _sample_rows(n, math.isqrt(int(_REPEATS_AT_THRESHOLD * n / worth)) + 1)
    if isinstance(values, pa.Array):
        seen: int = pc.count_distinct(values.take(pa.array(rows))).as_py()
    else:
        try:
            seen = len(set(itemgetter(*rows)(values)))
        except TypeError:  # unhashable cells: not text, so let the normaliser say so
            return False
    return (len(rows) - seen) * n >= worth * len(rows) ** 2


@functools.lru_cache(maxsize=64)
def _sample_rows(n: int, m: int) -> tuple[int, ...]:
    """Up to ``m`` distinct pseudo-random rows of ``n`` (batches often share a size: cached)."""
    points = _SAMPLE_POINTS[: min(m, n, _MAX_SAMPLE)]
    return tuple(np.unique((points * n).astype(np.int64)).tolist())


def _distinct(
    values: _Values,
) -> tuple[pa.Array, npt.NDArray[np.integer[Any]]] | None:
    """(distinct values, code of each row), or None when the values are not all Arrow text."""
    if not isinstance(values, pa.Array):
        try:
            # Inferred, not cast: bytes would pass as text under an explicit string type.
            array = pa.array(values)
        except (pa.ArrowException, ValueError, TypeError):  # lone surrogates, mixed types
            return None
        if array.type != pa.string() or array.null_count:
            return None
        values = array
    encoded = pc.dictionary_encode(values)
    return encoded.dictionary, encoded.indices.to_numpy(zero_copy_only=False)


def _normalise(kind: Kind, values: _Values) -> tuple[list[str | None], list[tuple[int, Reason]]]:
    """``normalise_many`` over Arrow or Python values; the C accelerator when it is built
    (faster than the vectorised Arrow NHS check, which serves without it)."""
    if isinstance(values, pa.Array):
        if kind is Kind.NHS_NUMBER and fastmac is None:
            normalised, errors = _nhs_fast(values)
            return normalised.to_pylist(), errors
        values = values.to_pylist()
    elif not isinstance(values, list | tuple):
        values = list(values)
    return normalise_many(kind, values)  # type: ignore[arg-type]  # non-str are not_text


def _refuse_long(
    values: _Values,
    max_chars: int,
    normalised: list[str | None],
    reasons: list[tuple[int, Reason]],
) -> None:
    """Mark values longer than ``max_chars`` code points ``bad_format`` unless already invalid."""
    if isinstance(values, pa.Array):
        lengths = pc.utf8_length(values).to_numpy(zero_copy_only=False)
        long = np.flatnonzero(lengths > max_chars).tolist()
    else:
        try:
            if max(map(len, values), default=0) <= max_chars:
                return
        except TypeError:  # cells that are not text have no length; they are not_text anyway
            pass
        long = [i for i, v in enumerate(values) if isinstance(v, str) and len(v) > max_chars]
    added = False
    for i in long:
        if normalised[i] is not None:
            normalised[i] = None
            reasons.append((i, Reason.BAD_FORMAT))
            added = True
    if added:
        reasons.sort()


def _row_errors(
    reasons: list[tuple[int, Reason]], codes: npt.NDArray[np.integer[Any]] | None
) -> list[tuple[int, str]]:
    """Errors of distinct values spread to every row holding them, ascending by row."""
    if codes is None:
        return [(i, str(reason)) for i, reason in reasons]
    if not reasons:
        return []
    by_code = {i: str(reason) for i, reason in reasons}
    bad = np.fromiter(by_code, dtype=codes.dtype, count=len(by_code))
    rows = np.flatnonzero(np.isin(codes, bad))
    return [(int(r), by_code[int(codes[r])]) for r in rows]
