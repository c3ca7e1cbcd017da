"""Who may call what: identities from SPIFFE URI SANs, and THE role table (in one place).

A caller's identity is the one ``spiffe://pseudogate/org/<org>/role/<role>`` URI in its client
certificate. Each RPC is allowed to a fixed set of roles; anything not in the table is denied.
Health checks and reflection are open to any caller the transport admitted and are not audited.
The table is documented in docs/auditors.md ("Roles").
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from cryptography import x509

from pseudogate.core.errors import InvalidInput, PermissionDenied
from pseudogate.core.names import ORG_PATTERN, ORG_RE, SPIFFE_IDENTITY_RE, check_organisation

__all__ = [
    "INSECURE",
    "ORG_RE",
    "ROLE_TABLE",
    "UNAUDITED_PREFIXES",
    "Identity",
    "Role",
    "allowed_roles",
    "authorise",
    "check_organisation",
    "identity_from_certificate",
    "identity_from_uris",
    "is_unaudited",
    "load_certificate",
    "spiffe_uri",
    "uri_sans",
]

_SPIFFE_PREFIX = "spiffe://"


class Role(enum.StrEnum):
    PROVIDER = "provider"  # submits data: tokenisation, SubmitDataset
    RESEARCHER = "researcher"  # receives extracts of its projects
    AUDITOR = "auditor"  # reads the audit log, policies and public keys; never data
    ADMIN = "admin"  # projects, opt-outs, linkage report, key metadata


@dataclass(frozen=True, slots=True)
class Identity:
    """An authenticated caller: its organisation and the roles it holds."""

    organisation: str
    roles: frozenset[Role]
    label: str | None = None  # how the audit log names the role when it is not a single one

    @classmethod
    def of(cls, organisation: str, role: Role) -> Identity:
        return cls(organisation, frozenset({role}))

    @property
    def role(self) -> Role | None:
        """The single role held, or None for a multi-role identity (``insecure``)."""
        return next(iter(self.roles)) if len(self.roles) == 1 else None

    @property
    def role_name(self) -> str:
        """The role as the audit log records it."""
        if self.label is not None:
            return self.label
        return self.role.value if self.role is not None else "multiple"


#: Development mode (``serve --insecure``): every caller is ``insecure`` holding all roles.
INSECURE = Identity("insecure", frozenset(Role), label="insecure")

_P, _R, _AU, _AD = Role.PROVIDER, Role.RESEARCHER, Role.AUDITOR, Role.ADMIN
_V1 = "/pseudogate.v1."

#: Full method name -> roles allowed to call it. Every RPC in proto/pseudogate/v1 is listed.
ROLE_TABLE: Mapping[str, frozenset[Role]] = MappingProxyType(
    {
        f"{_V1}TokenisationService/Tokenise": frozenset({_P}),
        f"{_V1}TokenisationService/TokeniseStream": frozenset({_P}),
        f"{_V1}DatasetService/SubmitDataset": frozenset({_P}),
        f"{_V1}ExtractService/CreateExtract": frozenset({_R}),
        f"{_V1}AdminService/CreateProject": frozenset({_AD}),
        f"{_V1}AdminService/ImportOptOuts": frozenset({_AD}),
        f"{_V1}AdminService/LinkageReport": frozenset({_AD}),
        f"{_V1}AdminService/ListKeys": frozenset({_AD}),
        f"{_V1}AuditService/ListEvents": frozenset({_AU}),
        f"{_V1}AuditService/GetCheckpoint": frozenset({_AU}),
        f"{_V1}AuditService/GetPolicy": frozenset({_AU}),
        f"{_V1}AuditService/GetRequestRegister": frozenset({_AU}),
        # People's rights (docs/rights.md): who may ask; approval also needs a different
        # organisation and role from the requester's (core/rights.py, the two-person rule).
        f"{_V1}RightsService/RequestSubjectAccess": frozenset({_AD}),
        f"{_V1}RightsService/RequestReidentification": frozenset({_R}),
        f"{_V1}RightsService/ApproveRequest": frozenset({_AU, _AD}),
        f"{_V1}RightsService/RefuseRequest": frozenset({_AU, _AD}),
        f"{_V1}RightsService/GetRequest": frozenset({_R, _AU, _AD}),
        f"{_V1}RightsService/ListRequests": frozenset({_R, _AU, _AD}),
        f"{_V1}RightsService/GetSubjectAccessReport": frozenset({_AD}),
        f"{_V1}RightsService/FetchReidentification": frozenset({_P}),
        # Open to every authenticated caller: everyone verifies manifests and checkpoints.
        f"{_V1}AuditService/GetPublicKey": frozenset(Role),
    }
)

#: Health checks and server reflection: open to any caller with a certificate from the CA,
#: not audited, not in the role table.
UNAUDITED_PREFIXES: tuple[str, ...] = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)


def is_unaudited(method: str) -> bool:
    return method.startswith(UNAUDITED_PREFIXES)


def allowed_roles(method: str) -> frozenset[Role]:
    """The roles that may call ``method``; empty for a method not in the table (denied)."""
    return ROLE_TABLE.get(method, frozenset())


def authorise(identity: Identity, method: str) -> Role | None:
    """Return the role under which ``identity`` may call ``method``, else PermissionDenied.

    Open methods (health, reflection) return None. A multi-role identity is granted under the
    first allowed role in :class:`Role` order, so its audit events can say which.
    """
    if is_unaudited(method):
        return None
    allowed = allowed_roles(method)
    for role in Role:
        if role in allowed and role in identity.roles:
            return role
    if not allowed:
        raise PermissionDenied(f"{method} is not a method of this gateway's role table")
    raise PermissionDenied(
        f"role {identity.role_name!r} may not call {method} "
        f"(allowed: {', '.join(sorted(r.value for r in allowed))})"
    )


def spiffe_uri(organisation: str, role: Role | str) -> str:
    """The identity URI for a client certificate; validates both parts."""
    if not ORG_RE.fullmatch(organisation):
        raise ValueError(f"organisation must match {ORG_PATTERN}")
    return f"spiffe://pseudogate/org/{organisation}/role/{Role(role).value}"


def identity_from_uris(uris: Sequence[str]) -> Identity:
    """The identity named by a certificate's URI SANs; PermissionDenied unless exactly one
    ``spiffe://`` URI is present and it is a valid pseudogate identity."""
    spiffe = [u for u in uris if u.lower().startswith(_SPIFFE_PREFIX)]
    if len(spiffe) != 1:
        raise PermissionDenied(
            f"client certificate must carry exactly one spiffe://pseudogate identity URI "
            f"(it carries {len(spiffe)})"
        )
    match = SPIFFE_IDENTITY_RE.fullmatch(spiffe[0])
    if match is None:
        raise PermissionDenied(
            "client certificate's identity URI is not spiffe://pseudogate/org/<org>/role/<role>"
        )
    try:
        role = Role(match.group(2))
    except ValueError:
        raise PermissionDenied(
            "client certificate's identity URI names an unknown role "
            f"(roles: {', '.join(r.value for r in Role)})"
        ) from None
    return Identity.of(match.group(1), role)


def identity_from_certificate(certificate: bytes | str) -> Identity:
    """The identity in a PEM (or DER) client certificate, e.g. grpc's ``x509_pem_cert``."""
    return identity_from_uris(uri_sans(certificate))


def load_certificate(data: bytes | str | x509.Certificate) -> x509.Certificate:
    """A certificate from PEM or DER bytes (or text)."""
    if isinstance(data, x509.Certificate):
        return data
    raw = data.encode("ascii") if isinstance(data, str) else bytes(data)
    try:
        if raw.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(raw)
        return x509.load_der_x509_certificate(raw)
    except ValueError:
        raise InvalidInput("not a PEM or DER X.509 certificate") from None


def uri_sans(certificate: bytes | str | x509.Certificate) -> list[str]:
    """The URI subject alternative names of a certificate (empty if it has none)."""
    cert = load_certificate(certificate)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return list(san.get_values_for_type(x509.UniformResourceIdentifier))
