"""Builds the optional C accelerators (pseudogate.core._fastmac, pseudogate.linkage._kernels); all
other metadata is pyproject.toml.

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
        ),
        Extension(
            "pseudogate.linkage._kernels",
            sources=["src/pseudogate/linkage/_kernels.c"],
            optional=True,
            extra_compile_args=["-O3", "-ffp-contract=off"],
        ),
    ]
)
