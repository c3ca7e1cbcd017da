"""Type aliases of the numpy arrays the anonymity engine passes around.

Integer codes, class ids and counts are narrowed to int32 or int16 where that is cheaper, so
their element type is any signed numpy integer; masks are booleans; bounds are float64.
"""

from __future__ import annotations

from typing import Any, TypeAlias

import numpy as np
from numpy.typing import NDArray

__all__ = ["BoolArray", "FloatArray", "Int64Array", "IntArray", "LevelArray"]

#: Signed integer codes, ids or counts (int16, int32 or int64 depending on their range).
IntArray: TypeAlias = NDArray[np.signedinteger[Any]]
#: Integers computed as int64 (row counts, ranks, suppression bounds).
Int64Array: TypeAlias = NDArray[np.int64]
#: One flag per class, node or row.
BoolArray: TypeAlias = NDArray[np.bool_]
#: Real-valued per-node bounds.
FloatArray: TypeAlias = NDArray[np.float64]
#: Level vectors of lattice nodes, one row per node (or one vector).
LevelArray: TypeAlias = NDArray[np.int16]
