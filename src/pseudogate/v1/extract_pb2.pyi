from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class CreateExtractRequest(_message.Message):
    __slots__ = ("project",)
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    project: str
    def __init__(self, project: _Optional[str] = ...) -> None: ...

class CreateExtractResponse(_message.Message):
    __slots__ = ("arrow_ipc", "manifest_json")
    ARROW_IPC_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_JSON_FIELD_NUMBER: _ClassVar[int]
    arrow_ipc: bytes
    manifest_json: str
    def __init__(self, arrow_ipc: _Optional[bytes] = ..., manifest_json: _Optional[str] = ...) -> None: ...
