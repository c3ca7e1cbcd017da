"""Arrow IPC streams: the wire form of tables between providers, the gateway and researchers.

Each message of DatasetService and ExtractService carries one *complete* IPC stream (schema,
batches, end marker), so every message can be read on its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pyarrow as pa

__all__ = ["ipc_stream_bytes", "text_table"]


def ipc_stream_bytes(data: pa.Table | pa.RecordBatch) -> bytes:
    """One complete Arrow IPC stream holding ``data``."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, data.schema) as writer:
        if isinstance(data, pa.RecordBatch):
            writer.write_batch(data)
        else:
            writer.write_table(data)
    return bytes(sink.getvalue().to_pybytes())


def text_table(columns: Mapping[str, Sequence[str | None]]) -> pa.Table:
    """A table of utf8 columns, as submissions require."""
    return pa.table({name: pa.array(list(values), type=pa.string()) for name, values in columns.items()})
