"""AuditService: the log, checkpoints, the public key and registered policies, for auditors."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import grpc

from pseudogate.audit import AuditLog
from pseudogate.core.errors import NotFound
from pseudogate.core.keyring import KeyInfo, Signer
from pseudogate.core.policy import Policy
from pseudogate.service.calls import current_call
from pseudogate.v1 import audit_pb2, audit_pb2_grpc

__all__ = ["AuditServicer"]

PolicyLookup = Callable[[str], Policy | None]


class AuditServicer(audit_pb2_grpc.AuditServiceServicer):
    def __init__(
        self,
        *,
        log: AuditLog,
        signer: Signer,
        policies: PolicyLookup,
        public_keys: Sequence[tuple[KeyInfo, str]] = (),
        request_register: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        """``public_keys``: every signing key's metadata and PEM (``public_signing_keys()``)."""
        self._log = log
        self._signer = signer
        self._policies = policies
        self._request_register = request_register
        self._public_keys = [
            audit_pb2.PublicSigningKey(
                key_id=info.id, public_key_pem=pem, status=info.status.value, created=info.created
            )
            for info, pem in public_keys
        ]

    def ListEvents(
        self, request: audit_pb2.ListEventsRequest, context: grpc.ServicerContext
    ) -> Iterator[audit_pb2.ListEventsResponse]:
        call = current_call()
        call.counts["from_seq"] = request.from_seq
        call.commit_point()  # this read is itself audited, and appears in what it returns
        for record in self._log.records(from_seq=max(request.from_seq, 1)):
            yield audit_pb2.ListEventsResponse(
                record_json=json.dumps(record, ensure_ascii=False, separators=(",", ":"))
            )

    def GetCheckpoint(
        self, request: audit_pb2.GetCheckpointRequest, context: grpc.ServicerContext
    ) -> audit_pb2.GetCheckpointResponse:
        current_call().commit_point()  # audit first, so the checkpoint covers this call too
        cp = self._log.checkpoint()
        return audit_pb2.GetCheckpointResponse(
            seq=cp["seq"], hash=cp["hash"], time=cp["time"], signature=cp["signature"]
        )

    def GetPublicKey(
        self, request: audit_pb2.GetPublicKeyRequest, context: grpc.ServicerContext
    ) -> audit_pb2.GetPublicKeyResponse:
        current_call().key_ids["signing"] = self._signer.key_id
        return audit_pb2.GetPublicKeyResponse(
            key_id=self._signer.key_id,
            public_key_pem=self._signer.public_key_pem(),
            signing_keys=self._public_keys,
        )

    def GetPolicy(
        self, request: audit_pb2.GetPolicyRequest, context: grpc.ServicerContext
    ) -> audit_pb2.GetPolicyResponse:
        policy = self._policies(request.name)
        if policy is None:
            raise NotFound("no registered policy or project policy by that name")
        current_call().policy_fingerprint = policy.fingerprint
        return audit_pb2.GetPolicyResponse(
            name=request.name,
            policy_yaml=policy.text,
            fingerprint=policy.fingerprint,
            files=dict(policy.files),
        )

    def GetRequestRegister(
        self, request: audit_pb2.GetRequestRegisterRequest, context: grpc.ServicerContext
    ) -> audit_pb2.GetRequestRegisterResponse:
        """People's rights requests counted per month, kind and outcome (docs/rights.md)."""
        register = self._request_register() if self._request_register else {"months": []}
        current_call().counts["rows"] = len(register["months"])
        return audit_pb2.GetRequestRegisterResponse(
            register_json=json.dumps(register, sort_keys=True)
        )
