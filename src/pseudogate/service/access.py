"""Who is calling: identities from mTLS client certificates, or the insecure identity."""

from __future__ import annotations

from typing import Any

import grpc

__all__ = ["UNAUDITED_PREFIXES", "InsecureAccess"]

#: Health checks and reflection are open to any caller the transport admits, and not audited.
UNAUDITED_PREFIXES: tuple[str, ...] = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)


class InsecureAccess:
    """Plaintext on loopback (``--insecure``): every caller is ``insecure`` with all roles."""

    ORGANISATION = "insecure"

    def identify(self, context: grpc.ServicerContext) -> Any:
        return self.ORGANISATION

    def authorise(self, identity: Any, method: str) -> None:
        return None

    def is_unaudited(self, method: str) -> bool:
        return method.startswith(UNAUDITED_PREFIXES)

    def describe(self, identity: Any) -> tuple[str, str, frozenset[str]]:
        roles = frozenset({"provider", "researcher", "auditor", "admin"})
        return self.ORGANISATION, "insecure", roles
