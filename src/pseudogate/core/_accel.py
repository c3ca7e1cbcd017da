"""The optional C accelerator (pseudogate.core._fastmac), or None.

The C module computes exactly what tokens.py, normalise.py and (for pg-fbf-v1 encodings)
encoding.py with identity.py compute in Python, only faster (docs/performance.md). It is built from src/pseudogate/core/_fastmac.c when a C compiler and the
Python headers are present; without them, or with PSEUDOGATE_PURE_PYTHON=1, everything runs in
pure Python with identical results.
"""

from __future__ import annotations

import os
from types import ModuleType

__all__ = ["fastmac"]


def _load() -> ModuleType | None:
    if os.environ.get("PSEUDOGATE_PURE_PYTHON") == "1":
        return None
    try:
        from pseudogate.core import _fastmac
    except ImportError:
        return None
    return _fastmac


fastmac: ModuleType | None = _load()
