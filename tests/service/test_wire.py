"""invalid_utf8_fields finds exactly the string fields protobuf refuses, by position."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pseudogate.service.wire import invalid_utf8_fields
from pseudogate.v1 import dataset_pb2, tokenisation_pb2


def _field(number: int, raw: bytes) -> bytes:
    length, out = len(raw), bytearray()
    while True:
        out.append((length & 0x7F) | (0x80 if length > 0x7F else 0))
        length >>= 7
        if not length:
            break
    return bytes([number << 3 | 2]) + bytes(out) + raw


def _utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=8), st.lists(st.binary(max_size=200), max_size=12))
def test_when_values_are_any_bytes_then_exactly_the_non_utf8_ones_are_located(
    domain: bytes, values: list[bytes]
) -> None:
    data = _field(1, domain) + b"".join(_field(2, v) for v in values)
    found = [(e.row, e.column, e.reason) for e in
             invalid_utf8_fields(tokenisation_pb2.TokeniseRequest.DESCRIPTOR, data)]
    expected = [] if _utf8(domain) else [(1, "domain", "invalid_utf8")]
    expected += [(i, "values", "invalid_utf8") for i, v in enumerate(values, 1) if not _utf8(v)]
    assert found == expected


def test_when_a_nested_header_field_is_not_utf8_then_its_path_is_named() -> None:
    header = _field(1, b"gp") + _field(3, b"\xffgp-org")
    data = _field(1, header)
    descriptor = dataset_pb2.SubmitDatasetRequest.DESCRIPTOR
    assert [(e.row, e.column) for e in invalid_utf8_fields(descriptor, data)] == [
        (1, "header.organisation")
    ]


@given(st.binary(max_size=64))
def test_when_bytes_are_not_protobuf_then_nothing_is_located_and_nothing_raises(
    data: bytes,
) -> None:
    invalid_utf8_fields(tokenisation_pb2.TokeniseRequest.DESCRIPTOR, data)
