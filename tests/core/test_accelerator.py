"""The optional C accelerator computes exactly what the pure-Python paths compute."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import pickle
import shutil
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pseudogate.core import normalise as normalise_module
from pseudogate.core._accel import fastmac
from pseudogate.core.normalise import HYPHENS, SPACES, Kind, normalise_many
from pseudogate.core.tokens import Tokeniser

can_build = (
    shutil.which(os.environ.get("CC", "gcc")) is not None
    and Path(sysconfig.get_paths()["include"], "Python.h").exists()
)
forced_pure = os.environ.get("PSEUDOGATE_PURE_PYTHON") == "1"
needs_accelerator = pytest.mark.skipif(fastmac is None, reason="C accelerator not built here")


def test_accelerator_is_built_wherever_it_can_be() -> None:
    """A C compile error would otherwise fall back to pure Python silently."""
    if can_build and not forced_pure:
        assert fastmac is not None, "gcc and Python.h are present but pseudogate.core._fastmac is not"
    else:
        assert fastmac is None or not forced_pure


@pytest.fixture(params=["sha-ni", "portable"])
def sha_backend(request: pytest.FixtureRequest) -> Iterator[str]:
    assert fastmac is not None
    fastmac.use_portable_sha256(request.param == "portable")
    try:
        yield fastmac.sha256_backend()
    finally:
        fastmac.use_portable_sha256(False)


texts = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=150)


@needs_accelerator
@settings(
    deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)  # set once per backend
@given(key=st.binary(min_size=0, max_size=150), values=st.lists(texts, max_size=40))
def test_fast_tokens_equal_pure_python_tokens(
    sha_backend: str, key: bytes, values: list[str]
) -> None:
    t = Tokeniser(key_id="k-1", label="test", derived_key=key)
    assert t.tokens(values) == t._tokens_python(values)
    for v in values[:3]:
        mac = hmac.new(key, v.encode("utf-8"), hashlib.sha256).digest()
        assert t.token(v) == "k-1_" + base64.b32encode(mac[:20]).decode("ascii").lower()


@needs_accelerator
def test_fast_tokens_cover_every_padding_boundary(sha_backend: str) -> None:
    t = Tokeniser(key_id="k", label="test", derived_key=b"\x01" * 32)
    values = ["a" * n for n in range(300)] + ["é" * n for n in range(100)]
    assert t.tokens(values) == t._tokens_python(values)
    assert len(t.tokens(values * 3)) == 3 * len(values)  # large batches release the GIL


@needs_accelerator
def test_fast_tokens_accept_any_iterable_and_reject_non_text() -> None:
    t = Tokeniser(key_id="k", label="test", derived_key=b"\x02" * 32)
    assert t.tokens(iter(["a", "b"])) == t.tokens(("a", "b")) == t._tokens_python(["a", "b"])
    assert t.tokens([]) == []
    with pytest.raises(TypeError, match=r"values\[1\] is not a str"):
        t.tokens(["a", b"b"])  # type: ignore[list-item]


@needs_accelerator
def test_fast_key_state_refuses_pickling() -> None:
    state = fastmac.HmacSha256(b"\x03" * 32)  # type: ignore[union-attr]
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(state)
    assert "\\x03" not in repr(state)


nhs_alphabet = "0123456789" + SPACES + HYPHENS + "aZ.+/\u0661\uff11"


@needs_accelerator
@settings(deadline=None)  # timing varies on a shared machine; speed is benchmarked
@given(
    values=st.lists(
        st.one_of(
            st.text(alphabet=nhs_alphabet, max_size=16),
            st.from_regex(r"[0-9]{10}", fullmatch=True),
            st.from_regex(r" ?[0-9]{3}[ -]?[0-9]{3}[ -]?[0-9]{4}\t?", fullmatch=True),
            st.none(),
            st.integers(),
        ),
        max_size=40,
    )
)
def test_fast_nhs_normalisation_equals_pure_python(values: list[object]) -> None:
    fast = normalise_many(Kind.NHS_NUMBER, values)  # type: ignore[arg-type]
    pure = normalise_module._nhs_many_python(values)  # type: ignore[arg-type]
    assert fast == pure


@needs_accelerator
def test_fast_nhs_separators_are_the_latin1_members_of_spaces_and_hyphens() -> None:
    for code in range(256):
        c = chr(code)
        (out,), errors = normalise_many(Kind.NHS_NUMBER, [f"943{c}476{c}5919"])
        if c in SPACES + HYPHENS:
            assert (out, errors) == ("9434765919", []), repr(c)
        else:
            assert out is None and len(errors) == 1, repr(c)
