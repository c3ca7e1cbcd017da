"""Locate strings that are not UTF-8 in a request that protobuf refused to parse.

Protobuf refuses a whole message when one ``string`` field holds bytes that are not UTF-8;
the caller would learn only "malformed". This walks the wire format of the refused bytes (no
values kept, none reported) and names each such field, with its 1-based position when the
field is repeated, so that the refusal is a row error like any other invalid value.
"""

from __future__ import annotations

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from pseudogate.core.errors import RowError

__all__ = ["invalid_utf8_fields"]

_STRING = FieldDescriptor.TYPE_STRING
_MESSAGE = FieldDescriptor.TYPE_MESSAGE
_MAX_DEPTH = 16


class _Unreadable(Exception):
    """The bytes are not well-formed protobuf wire format: nothing to locate."""


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise _Unreadable
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _walk(data: bytes, descriptor: Descriptor, prefix: str, depth: int) -> list[RowError]:
    if depth > _MAX_DEPTH:
        raise _Unreadable
    found: list[RowError] = []
    seen: dict[int, int] = {}
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            _, pos = _varint(data, pos)
            continue
        if wire in (1, 5):
            pos += 8 if wire == 1 else 4
            continue
        if wire != 2:
            raise _Unreadable
        length, pos = _varint(data, pos)
        chunk, pos = data[pos : pos + length], pos + length
        if pos > len(data):
            raise _Unreadable
        field = descriptor.fields_by_number.get(number)
        if field is None:
            continue
        seen[number] = seen.get(number, 0) + 1
        name = f"{prefix}{field.name}"
        if field.type == _STRING:
            try:
                chunk.decode("utf-8")
            except UnicodeDecodeError:
                found.append(RowError(seen[number] if field.is_repeated else 1, "invalid_utf8",
                                      name))
        elif field.type == _MESSAGE and field.message_type is not None:
            found.extend(_walk(chunk, field.message_type, f"{name}.", depth + 1))
    return found


def invalid_utf8_fields(descriptor: Descriptor, data: bytes) -> list[RowError]:
    """Each string field of ``data`` (a serialised ``descriptor`` message) whose bytes are not
    UTF-8: row = 1-based position in a repeated field (1 otherwise), column = field path."""
    try:
        return _walk(bytes(data), descriptor, "", 0)
    except _Unreadable:
        return []
