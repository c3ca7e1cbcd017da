from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SubmissionHeader(_message.Message):
    __slots__ = ("dataset", "policy", "organisation")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    ORGANISATION_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    policy: str
    organisation: str
    def __init__(self, dataset: _Optional[str] = ..., policy: _Optional[str] = ..., organisation: _Optional[str] = ...) -> None: ...

class SubmitDatasetRequest(_message.Message):
    __slots__ = ("header", "arrow_ipc")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    ARROW_IPC_FIELD_NUMBER: _ClassVar[int]
    header: SubmissionHeader
    arrow_ipc: bytes
    def __init__(self, header: _Optional[_Union[SubmissionHeader, _Mapping]] = ..., arrow_ipc: _Optional[bytes] = ...) -> None: ...

class SubmitDatasetResponse(_message.Message):
    __slots__ = ("dataset", "version", "rows", "policy_fingerprint", "key_id")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    POLICY_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    version: int
    rows: int
    policy_fingerprint: str
    key_id: str
    def __init__(self, dataset: _Optional[str] = ..., version: _Optional[int] = ..., rows: _Optional[int] = ..., policy_fingerprint: _Optional[str] = ..., key_id: _Optional[str] = ...) -> None: ...
