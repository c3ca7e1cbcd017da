"""pg-fbf-v1 through the C accelerator gives exactly the bytes of the pure-Python path.

``Encoder.encode`` uses ``_fastmac.encode_column`` / ``block_keys`` when the accelerator is
built; an encoder whose ``_fast`` states are all ``None`` takes the pure-Python path (the one
the published vectors were first checked against). Both are fed the same messy batches.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pseudogate.core._accel import fastmac
from pseudogate.core.encoding import SUBKEYS, Encoder, derive_encoder
from pseudogate.core.identity import IdentityField

pytestmark = pytest.mark.skipif(fastmac is None, reason="C accelerator not built here")

FIELDS = [f.value for f in IdentityField]


def people(n: int, *, seed: int) -> dict[str, list[object]]:
    """Benchmark-like records (benchmarks/_people.py is not imported by tests)."""
    rng = np.random.default_rng(seed)
    given = ["John", "Bill", "Siân", "Mary", "Katie", "Mohammed", "Zoë", "Sam", "Jo", "Liam"]
    family = ["Smith", "O'Brien", "JONES", "Smith-Jones", "Ng", "Łukasz", "Begum", "McKay"]
    out: dict[str, list[object]] = {f: [] for f in FIELDS}
    for _ in range(n):
        y, m, d = int(rng.integers(1920, 2020)), int(rng.integers(1, 13)), int(rng.integers(1, 29))
        form = int(rng.integers(0, 4))
        dob = [f"{y}-{m:02d}-{d:02d}", f"{d:02d}/{m:02d}/{y}", f"{y}{m:02d}{d:02d}", f"{d}.{m}.{y}"]
        pc = f"{'LS'[: int(rng.integers(1, 3))]}{int(rng.integers(1, 30))} {int(rng.integers(0, 10))}"
        pc += "ABDEFGHJ"[int(rng.integers(0, 8))] + "NPQRSTUW"[int(rng.integers(0, 8))]
        out["given_name"].append(given[int(rng.integers(0, len(given)))])
        out["family_name"].append(family[int(rng.integers(0, len(family)))])
        out["date_of_birth"].append(dob[form])
        out["sex"].append(["M", "F", "male", "", None][int(rng.integers(0, 5))])
        out["postcode"].append(pc.lower() if rng.random() < 0.3 else pc)
        out["address"].append(
            f"{int(rng.integers(1, 200))} High St, Flat {int(rng.integers(1, 9))}"
        )
    return out


def _pair(material: bytes = bytes(range(32))) -> tuple[Encoder, Encoder]:
    fast = derive_encoder(key_id="k", material=material)
    pure = derive_encoder(key_id="k", material=material)
    pure._fast = dict.fromkeys(SUBKEYS)  # the pure-Python path
    return fast, pure


def _same(fast: Encoder, pure: Encoder, cols: dict[str, list[object]]) -> None:
    a = fast.encode(cols).records.tobytes()
    b = pure.encode(cols).records.tobytes()
    assert a == b


@pytest.fixture(params=["sha-ni", "portable"])
def sha_backend(request: pytest.FixtureRequest) -> Iterator[str]:
    assert fastmac is not None
    fastmac.use_portable_sha256(request.param == "portable")
    try:
        yield fastmac.sha256_backend()
    finally:
        fastmac.use_portable_sha256(False)


# Text that exercises every branch: the ASCII fast paths (names, the three date forms,
# postcodes, abbreviations, nicknames) and everything that falls back to Python.
ASCII_PIECES = str.split(
    "John|bill|O'Brien|o.brien|Mc`Kay|SMITH-JONES| |\t|-|/|LL15 1AA|ll151aa|sw1a 1aa|GIR 0AA|"
    "EC1A1BB|W1A 0AX|M1 1AE|CR2 6XH|DN55 1PT|LL15|B|ZZ99|A1|AB1C|1985-03-12|12/03/1985|"
    "19850312|1985-3-12|31/02/2000|2000-13-01|13/13/2013|0000-01-01|12 High St|"
    "Flat 3, 10 Downing St.|rd|ave|st|cl|M|F|male|unknown|2|0|Sam|Kate|jonny|hw|Ashcraft|"
    "Tymczak|Pfister|Lloyd|aaaa|W1W 7LT|n1c4ab|2001-02-03|03/04/1999|20011205",
    "|",
)
UNICODE_PIECES = str.split(
    "Siân|José|ſ|Ωmega|Ωω|ß|ǅ|\u00a0|\u2019|\u0301|１２|٣|\U0001f600|\x00|\u200b|Ĳ|ﬁ|İ|"
    "\ud800|Łódź|İstanbul",
    "|",
)
_ascii_bits = st.sampled_from(ASCII_PIECES)
_unicode_bits = st.sampled_from(UNICODE_PIECES)
_text = st.one_of(
    _ascii_bits,
    _unicode_bits,
    st.text(max_size=30),
    st.text(alphabet=st.characters(max_codepoint=127), max_size=30),
    st.lists(st.one_of(_ascii_bits, _unicode_bits), max_size=5).map("".join),
    st.lists(_ascii_bits, min_size=1, max_size=4).map(" ".join),
)
_value = st.one_of(_text, st.none(), st.integers(), st.binary(max_size=3))


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    rows=st.lists(st.fixed_dictionaries({f: _value for f in FIELDS}), max_size=12),
    drop=st.sets(st.sampled_from(FIELDS)),
)
def test_c_and_python_paths_give_the_same_bytes_on_messy_values(
    sha_backend: str, rows: list[dict[str, object]], drop: set[str]
) -> None:
    fast, pure = _pair()
    cols = {f: [r[f] for r in rows] for f in FIELDS if f not in drop}
    _same(fast, pure, cols)
    _same(fast, pure, {f: v + v[::-1] for f, v in cols.items()})  # repeats, same encoder


def test_c_and_python_paths_agree_on_every_piece_and_pair_of_pieces() -> None:
    """Deterministic: each piece alone, and every pair joined directly and by a space."""
    pieces = ASCII_PIECES + UNICODE_PIECES
    values = pieces + [a + b for a in pieces for b in pieces]
    values += [f"{a} {b}" for a in pieces for b in pieces]
    fast, pure = _pair()
    _same(fast, pure, {f: list(values) for f in FIELDS})


@settings(max_examples=25, deadline=None)
@given(st.text(min_size=1, max_size=3), st.integers(1000, 20_000))
def test_c_and_python_paths_agree_on_very_long_values(piece: str, times: int) -> None:
    fast, pure = _pair()
    long = piece * times
    ascii_long = "Ab-c'D 12 rd. " * (times // 10)
    cols: dict[str, list[object]] = {
        f: [long, ascii_long, long + ascii_long, "x" + ascii_long] for f in FIELDS
    }
    _same(fast, pure, cols)


def test_c_and_python_paths_agree_on_benchmark_like_people() -> None:
    fast, pure = _pair(bytes(32))
    _same(fast, pure, people(3_000, seed=11))


def test_unhashable_values_str_subclasses_and_any_sequence_are_accepted() -> None:
    class Name(str):
        def __hash__(self) -> int:
            return 1

    fast, pure = _pair()
    cols: dict[str, list[object]] = {
        "given_name": [["John"], Name("John"), "John", {"a": 1}, Name("Bill")],
        "family_name": [Name("Smith"), "smith", None, b"x", "Smith"],
        "postcode": ["LL15 1AA"] * 5,
    }
    _same(fast, pure, cols)
    tuples = {f: tuple(v) for f, v in cols.items()}
    assert (
        fast.encode(tuples).records.tobytes() == pure.encode(cols).records.tobytes()  # type: ignore[arg-type]
    )


def test_empty_batches_and_all_missing_fields() -> None:
    fast, pure = _pair()
    _same(fast, pure, {f: [] for f in FIELDS})
    _same(fast, pure, {})
    _same(fast, pure, {f: [None, ""] for f in FIELDS})


def test_concurrent_encodes_with_one_encoder_give_the_same_bytes() -> None:
    """The GIL is released while MACing; the q-gram position cache is shared by threads."""
    cols = people(20_000, seed=3)
    fast, pure = _pair()
    want = pure.encode(cols).records.tobytes()
    got: list[bytes] = []

    def work() -> None:
        got.append(fast.encode(cols).records.tobytes())

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == [want] * 4


def test_kernel_arguments_are_checked() -> None:
    assert fastmac is not None
    mac = fastmac.HmacSha256(b"k")
    out = np.zeros((2, 251), dtype=np.uint8)
    codes = np.zeros(2, dtype=np.int32)
    args = (0, ["a", "b"], mac, str, out, 251, 1, 45, 256, 3, None, codes, {}, {})
    with pytest.raises(ValueError, match="layout"):
        fastmac.encode_column(
            0, ["a", "b"], mac, str, out, 251, 240, 45, 256, 3, None, codes, {}, {}
        )
    with pytest.raises(ValueError, match="wrong size"):
        fastmac.encode_column(*args[:4], out[:1], *args[5:])
    with pytest.raises(TypeError, match="HmacSha256"):
        fastmac.encode_column(*args[:2], object(), *args[3:])
    with pytest.raises(ValueError, match="cache"):
        fastmac.encode_column(*args[:10], bytearray(8), *args[11:])
    with pytest.raises(ValueError, match="out of range"):
        fastmac.block_keys(mac, out, 251, 210, ((codes + 5, ["x"]), None, None, None, None))
    with pytest.raises(TypeError):
        fastmac.block_keys(mac, out, 251, 210, ((codes, ["x", 3]), None, None, None, None))
