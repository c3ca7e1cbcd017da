"""The project join: the first dataset LEFT JOIN each further one on the linkage token.

Column layout (the contract): ``person`` first (the merged linkage columns), then every other
stored column of each dataset, in project order and each dataset's stored order, named
``<dataset>.<column>``. Rows follow a SQL LEFT JOIN from the first dataset: each left row in
order, repeated once per matching right row (in the right dataset's order), or once with
empty cells when nothing matches.

An empty linkage token ("": a record stored without an NHS number, which links by its identity
fields instead) is nobody's link: it matches nothing, not even another empty token, so two
records without a number are never joined as one person. A dataset's sealed linkage encoding
(the stored column with action ``encode``) is never an extract column.

In a probabilistic project a dataset may have no column under the domain (it links by its
encodings alone), and every dataset's link is replaced by its records' clusters'
representative tokens (gateway/clusters.py) before the join.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pseudogate.core.errors import FailedPrecondition
from pseudogate.core.names import PERSON_COLUMN
from pseudogate.store.catalog import VersionRecord

__all__ = ["PERSON", "JoinLayout", "join_layout", "left_join"]

#: The extract's linkage column (a column name, not the ``person`` domain: see core/names.py).
PERSON = PERSON_COLUMN


@dataclass(frozen=True, slots=True)
class JoinLayout:
    """Which stored column links each dataset, and the extract's other columns in order."""

    datasets: tuple[str, ...]
    #: per dataset: its column tokenised under the domain (None: none, probabilistic only)
    link_columns: tuple[str | None, ...]
    columns: tuple[tuple[str, str], ...]  # (dataset, stored column) after ``person``
    token_columns: frozenset[str]  # extract names of other tokenised columns (all domains)

    @property
    def header(self) -> list[str]:
        return [PERSON] + [f"{d}.{c}" for d, c in self.columns]


def join_layout(
    versions: Sequence[VersionRecord], *, domain: str, probabilistic: bool = False
) -> JoinLayout:
    """The layout for these versions; each must have exactly one column under ``domain``, or,
    when ``probabilistic``, at most one and then linkage encodings if it has none."""
    links: list[str | None] = []
    columns: list[tuple[str, str]] = []
    tokens: set[str] = set()
    for v in versions:
        candidates = v.token_columns(domain)
        if probabilistic and not candidates:
            if v.encoding_column is None:
                raise FailedPrecondition(
                    f"dataset {v.dataset!r} (version {v.version}) has neither a column "
                    f"tokenised under domain {domain!r} nor linkage encodings (identity "
                    "fields); probabilistic linkage needs one of them"
                )
        elif len(candidates) != 1:
            raise FailedPrecondition(
                f"dataset {v.dataset!r} (version {v.version}) has {len(candidates)} columns "
                f"tokenised under domain {domain!r}; joining needs exactly one"
            )
        link = candidates[0] if candidates else None
        links.append(link)
        for c in v.columns:
            if c.name == link or c.action == "encode":
                continue
            columns.append((v.dataset, c.name))
            if c.action == "tokenise":
                tokens.add(f"{v.dataset}.{c.name}")
    return JoinLayout(
        datasets=tuple(v.dataset for v in versions),
        link_columns=tuple(links),
        columns=tuple(columns),
        token_columns=frozenset(tokens),
    )


def left_join(
    left_key: pa.Array, right_key: pa.Array
) -> tuple[np.ndarray[Any, np.dtype[np.int64]], pa.Array]:
    """Row indices of a SQL LEFT JOIN: (left indices, right indices with nulls where no match).

    Left rows keep their order; a left row's matches keep the right side's order. Empty and
    null keys match nothing (a left row holding one appears once, unmatched).
    """
    n_left = len(left_key)
    encoded = pc.dictionary_encode(right_key)
    right_codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    distinct = encoded.dictionary
    order = np.argsort(right_codes, kind="stable")
    counts = np.bincount(right_codes, minlength=len(distinct))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    left_codes = (
        pc.fill_null(pc.index_in(left_key, value_set=distinct), -1)
        .to_numpy(zero_copy_only=False)
        .astype(np.int64)
    )
    # "" is in the right's dictionary when a right row has no token: it must not link.
    empty = pc.fill_null(pc.equal(left_key, ""), True).to_numpy(zero_copy_only=False)
    matched = (left_codes >= 0) & ~empty
    safe = np.where(matched, left_codes, 0)
    match_counts = np.where(matched, counts[safe] if len(counts) else 0, 0)
    reps = np.maximum(match_counts, 1)
    left_idx = np.repeat(np.arange(n_left, dtype=np.int64), reps)
    total = int(reps.sum())
    group_start = np.repeat(np.cumsum(reps) - reps, reps)
    within = np.arange(total, dtype=np.int64) - group_start
    right_start = np.repeat(np.where(matched, starts[safe] if len(starts) else 0, 0), reps)
    has_match = np.repeat(matched, reps)
    positions = np.where(has_match, right_start + within, 0)
    right_rows = order[positions] if len(order) else np.zeros(total, dtype=np.int64)
    right_idx = pa.array(right_rows, mask=~has_match, type=pa.int64())
    return left_idx, right_idx
