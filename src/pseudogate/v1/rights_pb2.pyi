from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RightsRequest(_message.Message):
    __slots__ = ("id", "kind", "status", "reason", "requester_organisation", "requester_role", "project", "created_at", "expires_at", "approvals", "refusal_reason", "tokens")
    ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REQUESTER_ORGANISATION_FIELD_NUMBER: _ClassVar[int]
    REQUESTER_ROLE_FIELD_NUMBER: _ClassVar[int]
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    APPROVALS_FIELD_NUMBER: _ClassVar[int]
    REFUSAL_REASON_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    id: str
    kind: str
    status: str
    reason: str
    requester_organisation: str
    requester_role: str
    project: str
    created_at: str
    expires_at: str
    approvals: int
    refusal_reason: str
    tokens: int
    def __init__(self, id: _Optional[str] = ..., kind: _Optional[str] = ..., status: _Optional[str] = ..., reason: _Optional[str] = ..., requester_organisation: _Optional[str] = ..., requester_role: _Optional[str] = ..., project: _Optional[str] = ..., created_at: _Optional[str] = ..., expires_at: _Optional[str] = ..., approvals: _Optional[int] = ..., refusal_reason: _Optional[str] = ..., tokens: _Optional[int] = ...) -> None: ...

class RequestSubjectAccessRequest(_message.Message):
    __slots__ = ("nhs_number", "reason")
    NHS_NUMBER_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    nhs_number: str
    reason: str
    def __init__(self, nhs_number: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class RequestSubjectAccessResponse(_message.Message):
    __slots__ = ("request",)
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    request: RightsRequest
    def __init__(self, request: _Optional[_Union[RightsRequest, _Mapping]] = ...) -> None: ...

class RequestReidentificationRequest(_message.Message):
    __slots__ = ("project", "tokens", "reason")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    project: str
    tokens: _containers.RepeatedScalarFieldContainer[str]
    reason: str
    def __init__(self, project: _Optional[str] = ..., tokens: _Optional[_Iterable[str]] = ..., reason: _Optional[str] = ...) -> None: ...

class RequestReidentificationResponse(_message.Message):
    __slots__ = ("request",)
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    request: RightsRequest
    def __init__(self, request: _Optional[_Union[RightsRequest, _Mapping]] = ...) -> None: ...

class ApproveRequestRequest(_message.Message):
    __slots__ = ("request",)
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    request: str
    def __init__(self, request: _Optional[str] = ...) -> None: ...

class ApproveRequestResponse(_message.Message):
    __slots__ = ("request",)
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    request: RightsRequest
    def __init__(self, request: _Optional[_Union[RightsRequest, _Mapping]] = ...) -> None: ...

class RefuseRequestRequest(_message.Message):
    __slots__ = ("request", "reason")
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    request: str
    reason: str
    def __init__(self, request: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class RefuseRequestResponse(_message.Message):
    __slots__ = ("request",)
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    request: RightsRequest
    def __init__(self, request: _Optional[_Union[RightsRequest, _Mapping]] = ...) -> None: ...

class GetRequestRequest(_message.Message):
    __slots__ = ("request",)
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    request: str
    def __init__(self, request: _Optional[str] = ...) -> None: ...

class GetRequestResponse(_message.Message):
    __slots__ = ("request",)
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    request: RightsRequest
    def __init__(self, request: _Optional[_Union[RightsRequest, _Mapping]] = ...) -> None: ...

class ListRequestsRequest(_message.Message):
    __slots__ = ("status",)
    STATUS_FIELD_NUMBER: _ClassVar[int]
    status: str
    def __init__(self, status: _Optional[str] = ...) -> None: ...

class ListRequestsResponse(_message.Message):
    __slots__ = ("requests",)
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[RightsRequest]
    def __init__(self, requests: _Optional[_Iterable[_Union[RightsRequest, _Mapping]]] = ...) -> None: ...

class GetSubjectAccessReportRequest(_message.Message):
    __slots__ = ("request",)
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    request: str
    def __init__(self, request: _Optional[str] = ...) -> None: ...

class GetSubjectAccessReportResponse(_message.Message):
    __slots__ = ("report_json",)
    REPORT_JSON_FIELD_NUMBER: _ClassVar[int]
    report_json: str
    def __init__(self, report_json: _Optional[str] = ...) -> None: ...

class FetchReidentificationRequest(_message.Message):
    __slots__ = ("request",)
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    request: str
    def __init__(self, request: _Optional[str] = ...) -> None: ...

class ReidentifiedRecord(_message.Message):
    __slots__ = ("dataset", "version", "row", "linkage_token")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ROW_FIELD_NUMBER: _ClassVar[int]
    LINKAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    version: int
    row: int
    linkage_token: str
    def __init__(self, dataset: _Optional[str] = ..., version: _Optional[int] = ..., row: _Optional[int] = ..., linkage_token: _Optional[str] = ...) -> None: ...

class FetchReidentificationResponse(_message.Message):
    __slots__ = ("request", "reason", "records")
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    request: str
    reason: str
    records: _containers.RepeatedCompositeFieldContainer[ReidentifiedRecord]
    def __init__(self, request: _Optional[str] = ..., reason: _Optional[str] = ..., records: _Optional[_Iterable[_Union[ReidentifiedRecord, _Mapping]]] = ...) -> None: ...
