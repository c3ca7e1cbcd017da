from pseudogate.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TokeniseRequest(_message.Message):
    __slots__ = ("domain", "values")
    DOMAIN_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    domain: str
    values: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, domain: _Optional[str] = ..., values: _Optional[_Iterable[str]] = ...) -> None: ...

class TokeniseResponse(_message.Message):
    __slots__ = ("tokens", "errors", "key_id")
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    tokens: _containers.RepeatedScalarFieldContainer[str]
    errors: _containers.RepeatedCompositeFieldContainer[_common_pb2.RowError]
    key_id: str
    def __init__(self, tokens: _Optional[_Iterable[str]] = ..., errors: _Optional[_Iterable[_Union[_common_pb2.RowError, _Mapping]]] = ..., key_id: _Optional[str] = ...) -> None: ...

class TokeniseStreamRequest(_message.Message):
    __slots__ = ("domain", "values", "batch_id")
    DOMAIN_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    domain: str
    values: _containers.RepeatedScalarFieldContainer[str]
    batch_id: int
    def __init__(self, domain: _Optional[str] = ..., values: _Optional[_Iterable[str]] = ..., batch_id: _Optional[int] = ...) -> None: ...

class TokeniseStreamResponse(_message.Message):
    __slots__ = ("tokens", "errors", "key_id", "batch_id")
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    tokens: _containers.RepeatedScalarFieldContainer[str]
    errors: _containers.RepeatedCompositeFieldContainer[_common_pb2.RowError]
    key_id: str
    batch_id: int
    def __init__(self, tokens: _Optional[_Iterable[str]] = ..., errors: _Optional[_Iterable[_Union[_common_pb2.RowError, _Mapping]]] = ..., key_id: _Optional[str] = ..., batch_id: _Optional[int] = ...) -> None: ...
