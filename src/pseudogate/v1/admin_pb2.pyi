from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CreateProjectRequest(_message.Message):
    __slots__ = ("project", "researcher", "datasets", "policy_yaml", "policy_files", "expires", "domain", "linkage", "linkage_threshold", "title", "purpose", "legal_basis", "public_benefit")
    class PolicyFilesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: bytes
        def __init__(self, key: _Optional[str] = ..., value: _Optional[bytes] = ...) -> None: ...
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    RESEARCHER_FIELD_NUMBER: _ClassVar[int]
    DATASETS_FIELD_NUMBER: _ClassVar[int]
    POLICY_YAML_FIELD_NUMBER: _ClassVar[int]
    POLICY_FILES_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_FIELD_NUMBER: _ClassVar[int]
    DOMAIN_FIELD_NUMBER: _ClassVar[int]
    LINKAGE_FIELD_NUMBER: _ClassVar[int]
    LINKAGE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    LEGAL_BASIS_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_BENEFIT_FIELD_NUMBER: _ClassVar[int]
    project: str
    researcher: str
    datasets: _containers.RepeatedScalarFieldContainer[str]
    policy_yaml: str
    policy_files: _containers.ScalarMap[str, bytes]
    expires: str
    domain: str
    linkage: str
    linkage_threshold: float
    title: str
    purpose: str
    legal_basis: str
    public_benefit: str
    def __init__(self, project: _Optional[str] = ..., researcher: _Optional[str] = ..., datasets: _Optional[_Iterable[str]] = ..., policy_yaml: _Optional[str] = ..., policy_files: _Optional[_Mapping[str, bytes]] = ..., expires: _Optional[str] = ..., domain: _Optional[str] = ..., linkage: _Optional[str] = ..., linkage_threshold: _Optional[float] = ..., title: _Optional[str] = ..., purpose: _Optional[str] = ..., legal_basis: _Optional[str] = ..., public_benefit: _Optional[str] = ...) -> None: ...

class CreateProjectResponse(_message.Message):
    __slots__ = ("project", "policy_fingerprint", "project_key_id", "linkage", "linkage_threshold")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    POLICY_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    PROJECT_KEY_ID_FIELD_NUMBER: _ClassVar[int]
    LINKAGE_FIELD_NUMBER: _ClassVar[int]
    LINKAGE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    project: str
    policy_fingerprint: str
    project_key_id: str
    linkage: str
    linkage_threshold: float
    def __init__(self, project: _Optional[str] = ..., policy_fingerprint: _Optional[str] = ..., project_key_id: _Optional[str] = ..., linkage: _Optional[str] = ..., linkage_threshold: _Optional[float] = ...) -> None: ...

class ImportOptOutsRequest(_message.Message):
    __slots__ = ("nhs_numbers", "domain", "allow_empty")
    NHS_NUMBERS_FIELD_NUMBER: _ClassVar[int]
    DOMAIN_FIELD_NUMBER: _ClassVar[int]
    ALLOW_EMPTY_FIELD_NUMBER: _ClassVar[int]
    nhs_numbers: _containers.RepeatedScalarFieldContainer[str]
    domain: str
    allow_empty: bool
    def __init__(self, nhs_numbers: _Optional[_Iterable[str]] = ..., domain: _Optional[str] = ..., allow_empty: _Optional[bool] = ...) -> None: ...

class ImportOptOutsResponse(_message.Message):
    __slots__ = ("snapshot", "count", "previous_snapshot", "previous_count")
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_COUNT_FIELD_NUMBER: _ClassVar[int]
    snapshot: int
    count: int
    previous_snapshot: int
    previous_count: int
    def __init__(self, snapshot: _Optional[int] = ..., count: _Optional[int] = ..., previous_snapshot: _Optional[int] = ..., previous_count: _Optional[int] = ...) -> None: ...

class LinkageReportRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class LinkageReportResponse(_message.Message):
    __slots__ = ("report_json",)
    REPORT_JSON_FIELD_NUMBER: _ClassVar[int]
    report_json: str
    def __init__(self, report_json: _Optional[str] = ...) -> None: ...

class ListKeysRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class KeyMetadata(_message.Message):
    __slots__ = ("id", "purpose", "status", "created", "fingerprint")
    ID_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    id: str
    purpose: str
    status: str
    created: str
    fingerprint: str
    def __init__(self, id: _Optional[str] = ..., purpose: _Optional[str] = ..., status: _Optional[str] = ..., created: _Optional[str] = ..., fingerprint: _Optional[str] = ...) -> None: ...

class ListKeysResponse(_message.Message):
    __slots__ = ("keys",)
    KEYS_FIELD_NUMBER: _ClassVar[int]
    keys: _containers.RepeatedCompositeFieldContainer[KeyMetadata]
    def __init__(self, keys: _Optional[_Iterable[_Union[KeyMetadata, _Mapping]]] = ...) -> None: ...
