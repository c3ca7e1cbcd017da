from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ListEventsRequest(_message.Message):
    __slots__ = ("from_seq",)
    FROM_SEQ_FIELD_NUMBER: _ClassVar[int]
    from_seq: int
    def __init__(self, from_seq: _Optional[int] = ...) -> None: ...

class ListEventsResponse(_message.Message):
    __slots__ = ("record_json",)
    RECORD_JSON_FIELD_NUMBER: _ClassVar[int]
    record_json: str
    def __init__(self, record_json: _Optional[str] = ...) -> None: ...

class GetCheckpointRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetCheckpointResponse(_message.Message):
    __slots__ = ("seq", "hash", "time", "signature")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    HASH_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    seq: int
    hash: str
    time: str
    signature: str
    def __init__(self, seq: _Optional[int] = ..., hash: _Optional[str] = ..., time: _Optional[str] = ..., signature: _Optional[str] = ...) -> None: ...

class GetPublicKeyRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetPublicKeyResponse(_message.Message):
    __slots__ = ("key_id", "public_key_pem", "signing_keys")
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_PEM_FIELD_NUMBER: _ClassVar[int]
    SIGNING_KEYS_FIELD_NUMBER: _ClassVar[int]
    key_id: str
    public_key_pem: str
    signing_keys: _containers.RepeatedCompositeFieldContainer[PublicSigningKey]
    def __init__(self, key_id: _Optional[str] = ..., public_key_pem: _Optional[str] = ..., signing_keys: _Optional[_Iterable[_Union[PublicSigningKey, _Mapping]]] = ...) -> None: ...

class PublicSigningKey(_message.Message):
    __slots__ = ("key_id", "public_key_pem", "status", "created")
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_PEM_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    key_id: str
    public_key_pem: str
    status: str
    created: str
    def __init__(self, key_id: _Optional[str] = ..., public_key_pem: _Optional[str] = ..., status: _Optional[str] = ..., created: _Optional[str] = ...) -> None: ...

class GetPolicyRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetPolicyResponse(_message.Message):
    __slots__ = ("name", "policy_yaml", "fingerprint", "files")
    class FilesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: bytes
        def __init__(self, key: _Optional[str] = ..., value: _Optional[bytes] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    POLICY_YAML_FIELD_NUMBER: _ClassVar[int]
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    name: str
    policy_yaml: str
    fingerprint: str
    files: _containers.ScalarMap[str, bytes]
    def __init__(self, name: _Optional[str] = ..., policy_yaml: _Optional[str] = ..., fingerprint: _Optional[str] = ..., files: _Optional[_Mapping[str, bytes]] = ...) -> None: ...

class GetRequestRegisterRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetRequestRegisterResponse(_message.Message):
    __slots__ = ("register_json",)
    REGISTER_JSON_FIELD_NUMBER: _ClassVar[int]
    register_json: str
    def __init__(self, register_json: _Optional[str] = ...) -> None: ...
