"""Who is calling: identities from mTLS client certificates, or the insecure identity.

The role table itself lives in :mod:`pseudogate.core.authz` (one place); this module only reads the
caller's certificate from the gRPC context.
"""

from __future__ import annotations

from collections.abc import Mapping

import grpc

from pseudogate.core import authz
from pseudogate.core.errors import PermissionDenied

__all__ = ["InsecureAccess", "MtlsAccess"]


class _TableAccess:
    def authorise(self, identity: authz.Identity, method: str) -> None:
        authz.authorise(identity, method)

    def is_unaudited(self, method: str) -> bool:
        return authz.is_unaudited(method)

    def describe(self, identity: authz.Identity) -> tuple[str, str, frozenset[str]]:
        return identity.organisation, identity.role_name, frozenset(r.value for r in identity.roles)


class InsecureAccess(_TableAccess):
    """Plaintext on loopback (``--insecure``): every caller is ``insecure`` with all roles."""

    def identify(self, context: grpc.ServicerContext) -> authz.Identity:
        return authz.INSECURE


class MtlsAccess(_TableAccess):
    """Mutual TLS: the transport admitted only certificates from our CA; read the identity."""

    def identify(self, context: grpc.ServicerContext) -> authz.Identity:
        # grpc-stubs types each auth property as bytes; grpc gives a list of bytes values.
        auth: Mapping[str, list[bytes]] = context.auth_context()  # type: ignore[assignment]
        pems = auth.get("x509_pem_cert") or []
        if not pems:
            raise PermissionDenied("no client certificate")
        return authz.identity_from_certificate(pems[0])
