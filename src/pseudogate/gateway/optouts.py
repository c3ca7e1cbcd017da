"""National data opt-out: NHS numbers in, tokens stored, raw numbers never kept.

Each import is a complete snapshot with the next consecutive id; only the latest snapshot of a
linkage domain applies to extracts. Any invalid number refuses the whole import (row numbers
and reasons, never values); duplicates count once. An empty list would clear every opt-out
of the domain, so it is refused unless the caller says it is meant (``allow_empty``).
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from pseudogate.core.columns import tokenise_column
from pseudogate.core.errors import InvalidInput, RowError, RowErrors
from pseudogate.core.normalise import Kind
from pseudogate.core.tokens import Tokeniser

__all__ = ["EMPTY_OPTOUTS_REFUSED", "check_not_empty", "optout_tokens"]

EMPTY_OPTOUTS_REFUSED = (
    "the opt-out list is empty: importing it would clear every opt-out of the linkage domain; "
    "if that is meant, import it with allow_empty (CLI: --allow-empty)"
)


def check_not_empty(nhs_numbers: Sequence[object], *, allow_empty: bool) -> None:
    """Refuse an empty snapshot unless it is meant: one wrong file must not clear every opt-out."""
    if not nhs_numbers and not allow_empty:
        raise InvalidInput(EMPTY_OPTOUTS_REFUSED)


def optout_tokens(nhs_numbers: Sequence[str], *, tokeniser: Tokeniser) -> list[str]:
    """The distinct linkage tokens of the numbers; RowErrors (1-based rows) if any is invalid."""
    if any(not isinstance(v, str) for v in nhs_numbers):
        bad = [RowError(i + 1, "not_text") for i, v in enumerate(nhs_numbers) if not isinstance(v, str)]
        raise RowErrors(bad, context="opt-out import")
    try:
        values = pa.array(list(nhs_numbers), type=pa.string())
    except (pa.ArrowException, ValueError):
        raise InvalidInput("opt-out numbers must be text") from None
    done = tokenise_column(values, kind=Kind.NHS_NUMBER, tokeniser=tokeniser)
    if done.errors:
        raise RowErrors(
            [RowError(i + 1, reason) for i, reason in done.errors], context="opt-out import"
        )
    return pc.unique(done.tokens).to_pylist() if len(done.tokens) else []
