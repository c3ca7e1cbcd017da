from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class RowError(_message.Message):
    __slots__ = ("index", "reason", "column")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    COLUMN_FIELD_NUMBER: _ClassVar[int]
    index: int
    reason: str
    column: str
    def __init__(self, index: _Optional[int] = ..., reason: _Optional[str] = ..., column: _Optional[str] = ...) -> None: ...
