"""Builds the optional C accelerator (pseudogate.core._fastmac); all other metadata is pyproject.toml.

``optional=True``: on a machine without a C compiler or the Python headers the install still
succeeds and pseudogate runs in pure Python with identical results (docs/performance.md).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "pseudogate.core._fastmac",
            sources=["src/pseudogate/core/_fastmac.c"],
            optional=True,
            extra_compile_args=["-O3"],
        )
    ]
)
