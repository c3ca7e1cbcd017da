"""Probabilistic projects: each record's representative linkage token (docs/linkage.md).

The records of a project's datasets (dataset order, then row order) are clustered into people
by the matching engine on their opened ``pg-fbf-v1`` encodings and NHS linkage tokens. Each
cluster is then named by one *representative linkage token*:

- the smallest NHS linkage token in the cluster when it has one (a cluster never holds two
  different ones: the engine's hard rule, checked again here);
- otherwise the cluster token of its first record, derived under the linkage key from the
  dataset name, the 1-based row and the record's opened encoding
  (``Keyring.linkage_cluster_tokeniser``, docs/linkage.md "Representative tokens").

The extract then replaces every dataset's link by these tokens and joins, removes opt-outs and
re-keys exactly as for an exact project. Encodings are opened in memory only; nothing here is
logged or stored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from pseudogate.core import encoding as fbf
from pseudogate.core.columns import as_text
from pseudogate.core.encoding import EncodingKeyMismatch
from pseudogate.core.keyring import Keyring
from pseudogate.linkage.engine import link
from pseudogate.linkage.fbf_records import from_encodings, nhs_codes
from pseudogate.store.catalog import VersionRecord
from pseudogate.store.datasets import DatasetFiles

__all__ = [
    "LINK_SEED",
    "ClusteredLinks",
    "check_same_linkage_key",
    "cluster_message",
    "representative_links",
]

#: The engine's seed (the random pairs that estimate u): fixed, so an extract is reproducible.
LINK_SEED = 0


@dataclass(frozen=True)
class ClusteredLinks:
    """Per dataset, each row's representative linkage token; and the counts of the run."""

    links: tuple[pa.Array, ...]
    records: int
    clusters: int
    clusters_without_nhs: int


def cluster_message(dataset: str, row: int, record: bytes) -> str:
    """The message a cluster token is computed over: ``<dataset>/<row>/<hex of the record>``
    (the dataset name, the 1-based row, the opened 251-byte ``pg-fbf-v1`` record)."""
    return f"{dataset}/{row}/{record.hex()}"


def check_same_linkage_key(versions: Sequence[VersionRecord]) -> str:
    """The one linkage key of the versions; refused naming the datasets if they differ."""
    first = versions[0]
    for v in versions[1:]:
        if v.linkage_key_id != first.linkage_key_id:
            raise EncodingKeyMismatch(
                f"datasets {first.dataset!r} (linkage key {first.linkage_key_id!r}) and "
                f"{v.dataset!r} (linkage key {v.linkage_key_id!r}) were encoded and tokenised "
                "under different linkage keys and cannot be linked; the provider must resubmit "
                "under the current linkage key"
            )
    return first.linkage_key_id


def representative_links(
    versions: Sequence[VersionRecord],
    link_columns: Sequence[str | None],
    *,
    files: DatasetFiles,
    keyring: Keyring,
    threshold: float,
) -> ClusteredLinks:
    """Cluster the versions' records and return each row's representative linkage token."""
    key_id = check_same_linkage_key(versions)
    encoder = keyring.linkage_encoder(key_id=key_id)
    batches: list[fbf.EncodedRecords] = []
    tokens: list[pa.Array] = []
    for v, link_column in zip(versions, link_columns, strict=True):
        wanted = [c for c in (link_column, v.encoding_column) if c is not None]
        table = files.read(v.file, columns=wanted)
        n = table.num_rows
        if v.encoding_column is not None:
            sealed = table.column(v.encoding_column).to_pylist()
            batches.append(encoder.open(sealed, name=f"dataset {v.dataset!r}"))
        else:  # linked by NHS token alone: every identity field missing
            batches.append(encoder.encode({}, n=n))
        if link_column is not None:
            tokens.append(pc.fill_null(as_text(table.column(link_column)), ""))
        else:
            tokens.append(pa.array([""] * n, type=pa.string()))
        del table
    sizes = [len(b) for b in batches]
    all_tokens = pa.chunked_array(tokens, type=pa.string()).combine_chunks() if tokens else (
        pa.array([], type=pa.string()))
    token_values = np.asarray(all_tokens.to_numpy(zero_copy_only=False), dtype=object)
    nhs = nhs_codes(token_values.tolist())
    labels = _cluster(batches, versions, sizes, nhs, threshold=threshold)
    reps, without = _representatives(
        labels, token_values, versions, batches, sizes, keyring=keyring, key_id=key_id
    )
    per_record = reps[labels]
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    links = tuple(
        pa.array(per_record[offsets[i] : offsets[i + 1]].tolist(), type=pa.string())
        for i in range(len(sizes))
    )
    return ClusteredLinks(links, len(labels), len(reps), without)


def _has_identity(batch: fbf.EncodedRecords) -> npt.NDArray[np.bool_]:
    """Records with at least one identity field present (any field's flags byte set)."""
    r = batch.records
    flags = [name for name in r.dtype.names or () if name.endswith("_flags") and name != "block_flags"]
    present = np.zeros(len(r), dtype=bool)
    for name in flags:
        present |= r[name] != 0
    return present


def _cluster(
    batches: Sequence[fbf.EncodedRecords],
    versions: Sequence[VersionRecord],
    sizes: Sequence[int],
    nhs: npt.NDArray[np.int64],
    *,
    threshold: float,
) -> npt.NDArray[np.int64]:
    """A cluster label per record (dataset order, then row order).

    Only records with identity fields go through the engine. A record without any is linked by
    its NHS token alone: it joins the cluster holding that token, or forms one with the other
    records of the token; with no token either, it is a person of its own. Leaving such records
    out changes no hard rule, but keeps them from diluting the engine's model and the average
    probabilities its clustering merges on (an all-missing record scores low against anyone).
    """
    has = [_has_identity(b) for b in batches]
    source = np.repeat(np.arange(len(sizes), dtype=np.int32), sizes)
    row = np.concatenate([np.zeros(0, np.int64), *(np.arange(1, s + 1, dtype=np.int64)
                                                   for s in sizes)])
    engine = np.concatenate([np.zeros(0, bool), *has])
    table = from_encodings(
        [b[np.flatnonzero(h)] for b, h in zip(batches, has, strict=True)],
        names=[f"dataset {v.dataset!r}" for v in versions],
        nhs=nhs[engine],
        # numpy arrays where sequences are asked for: from_encodings takes np.asarray of them
        source=cast(Sequence[int], source[engine]),
        row=cast(Sequence[int], row[engine]),
    )
    labels = np.full(len(nhs), -1, dtype=np.int64)
    labels[engine] = link(table, threshold=threshold, seed=LINK_SEED).labels
    next_label = int(labels.max(initial=-1)) + 1
    by_token: dict[int, int] = {}
    for i in np.flatnonzero(engine & (nhs >= 0)).tolist():
        by_token.setdefault(int(nhs[i]), int(labels[i]))
    for i in np.flatnonzero(~engine).tolist():
        code = int(nhs[i])
        if code < 0:
            labels[i] = next_label
            next_label += 1
            continue
        if code not in by_token:
            by_token[code] = next_label
            next_label += 1
        labels[i] = by_token[code]
    return labels


def _representatives(
    labels: npt.NDArray[np.int64],
    token_values: npt.NDArray[np.object_],
    versions: Sequence[VersionRecord],
    batches: Sequence[fbf.EncodedRecords],
    sizes: Sequence[int],
    *,
    keyring: Keyring,
    key_id: str,
) -> tuple[npt.NDArray[np.object_], int]:
    """Each cluster's representative token (index = cluster id) and how many had no NHS."""
    n_clusters = int(labels.max()) + 1 if len(labels) else 0
    reps = np.empty(n_clusters, dtype=object)
    uniq, inverse = np.unique(token_values.astype(str), return_inverse=True)
    inverse = inverse.reshape(-1).astype(np.int64)
    has = uniq[inverse] != ""
    # smallest and largest NHS token per cluster (np.unique sorts: code order = token order)
    big = np.iinfo(np.int64).max
    smallest = np.full(n_clusters, big, dtype=np.int64)
    largest = np.full(n_clusters, -1, dtype=np.int64)
    np.minimum.at(smallest, labels[has], inverse[has])
    np.maximum.at(largest, labels[has], inverse[has])
    with_nhs = largest >= 0
    if np.any(smallest[with_nhs] != largest[with_nhs]):
        # The engine never merges two different NHS tokens; an extract must not rely on luck.
        raise RuntimeError("linkage produced a cluster holding two different NHS linkage tokens")
    reps[with_nhs] = uniq[smallest[with_nhs]]
    missing = np.flatnonzero(~with_nhs)
    if len(missing):
        _, first = np.unique(labels, return_index=True)  # first record of each cluster
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        messages = []
        for record in first[missing].tolist():
            source = int(np.searchsorted(offsets, record, side="right") - 1)
            row = record - int(offsets[source])
            raw = batches[source].records[row].tobytes()
            messages.append(cluster_message(versions[source].dataset, row + 1, raw))
        tokeniser = keyring.linkage_cluster_tokeniser(key_id=key_id)
        reps[missing] = tokeniser.tokens(messages)
    return reps, len(missing)
