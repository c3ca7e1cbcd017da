"""Development certificates for mutual TLS: a CA, a localhost server and one client per org.

The contract (issue 5, section 7): ECDSA P-256, valid 30 days; the server carries
``DNS:localhost`` and ``IP:127.0.0.1`` with EKU serverAuth; each client carries EKU clientAuth
and exactly one URI SAN ``spiffe://pseudogate/org/<org>/role/<role>``. Files: ``ca.pem``,
``ca.key``, ``server.pem``, ``server.key``, ``<org>.pem``, ``<org>.key``; keys are mode 0600.
``ca.key`` is kept so more organisations can be added later with the same CA.

The issuing functions take explicit validity times so tests can make expired certificates and
certificates from a second CA.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pseudogate.core.authz import (
    Role,
    check_organisation,
    load_certificate,
    spiffe_uri,
    uri_sans,
)
from pseudogate.core.clock import Clock, utc_now
from pseudogate.core.errors import InvalidInput
from pseudogate.core.fileio import atomic_write_bytes

__all__ = [
    "RESERVED_NAMES",
    "VALIDITY",
    "CertificateAuthority",
    "DevCertsResult",
    "cert_pem",
    "issue_client_cert",
    "issue_server_cert",
    "key_pem",
    "load_certificate",
    "make_ca",
    "parse_org_role",
    "uri_sans",
    "write_dev_certs",
]

VALIDITY = dt.timedelta(days=30)
#: Organisation names that would collide with the CA and server files.
RESERVED_NAMES = frozenset({"ca", "server"})

PrivateKey = ec.EllipticCurvePrivateKey


class CertificateAuthority:
    """A CA certificate and its key, able to issue server and client certificates."""

    def __init__(self, cert: x509.Certificate, key: PrivateKey) -> None:
        self.cert = cert
        self.key = key


def _new_key() -> PrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str, organisation: str | None = None) -> x509.Name:
    parts = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organisation:
        parts.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation))
    return x509.Name(parts)


def _leaf_builder(
    ca: CertificateAuthority,
    key: PrivateKey,
    subject: x509.Name,
    *,
    not_before: dt.datetime,
    not_after: dt.datetime,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=False,
                crl_sign=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False
        )
    )


def make_ca(
    *, not_before: dt.datetime, not_after: dt.datetime, common_name: str = "pseudogate dev CA"
) -> CertificateAuthority:
    """A self-signed CA (path length 0: it issues leaf certificates only)."""
    key = _new_key()
    subject = _name(common_name)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return CertificateAuthority(cert, key)


def issue_server_cert(
    ca: CertificateAuthority,
    *,
    not_before: dt.datetime,
    not_after: dt.datetime,
    dns_names: Sequence[str] = ("localhost",),
    ip_addresses: Sequence[str] = ("127.0.0.1",),
) -> tuple[x509.Certificate, PrivateKey]:
    """A server certificate (EKU serverAuth) for the given names, by default localhost."""
    key = _new_key()
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    sans += [x509.IPAddress(ipaddress.ip_address(a)) for a in ip_addresses]
    cert = (
        _leaf_builder(ca, key, _name("localhost"), not_before=not_before, not_after=not_after)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    return cert, key


def issue_client_cert(
    ca: CertificateAuthority,
    organisation: str,
    role: Role | str,
    *,
    not_before: dt.datetime,
    not_after: dt.datetime,
    uris: Sequence[str] | None = None,
) -> tuple[x509.Certificate, PrivateKey]:
    """A client certificate (EKU clientAuth) whose identity is the org's SPIFFE URI.

    ``uris`` replaces the URI SANs (tests: none, two, or malformed identities).
    """
    key = _new_key()
    identity = [spiffe_uri(organisation, role)] if uris is None else list(uris)
    builder = _leaf_builder(
        ca, key, _name(organisation, organisation), not_before=not_before, not_after=not_after
    )
    if identity:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(u) for u in identity]),
            critical=False,
        )
    cert = builder.add_extension(
        x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
    ).sign(ca.key, hashes.SHA256())
    return cert, key


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def key_pem(key: PrivateKey) -> bytes:
    """Unencrypted PKCS#8 PEM (what gRPC reads); written only with mode 0600."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def parse_org_role(spec: str) -> tuple[str, Role]:
    """``"gp-denbigh:provider"`` -> ``("gp-denbigh", Role.PROVIDER)``; InvalidInput if bad."""
    org, sep, role = spec.partition(":")
    if not sep:
        raise InvalidInput("--org: expected NAME:ROLE, e.g. gp-denbigh:provider")
    check_organisation(org, field="--org NAME")
    if org in RESERVED_NAMES:
        raise InvalidInput(f"--org {spec!r}: {org!r} is reserved (its files would clash)")
    try:
        return org, Role(role)
    except ValueError:
        raise InvalidInput(
            f"--org {spec!r}: role must be one of {', '.join(r.value for r in Role)}"
        ) from None


class DevCertsResult:
    """What :func:`write_dev_certs` did: files written, and whether an existing CA was reused."""

    def __init__(self, written: list[Path], reused_ca: bool) -> None:
        self.written = written
        self.reused_ca = reused_ca


def _load_ca(out: Path, now: dt.datetime) -> CertificateAuthority | None:
    """The CA already in ``out`` if both files are there and it is still valid."""
    pem_path, key_path = out / "ca.pem", out / "ca.key"
    if not pem_path.exists() and not key_path.exists():
        return None
    if not (pem_path.exists() and key_path.exists()):
        raise InvalidInput(
            f"{out} has only one of ca.pem and ca.key; remove it or use --force for a new CA"
        )
    cert = load_certificate(pem_path.read_bytes())
    try:
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (ValueError, TypeError):
        raise InvalidInput(f"{key_path} is not an unencrypted PEM private key") from None
    cert_key = cert.public_key()
    if (
        not isinstance(key, ec.EllipticCurvePrivateKey)
        or not isinstance(cert_key, ec.EllipticCurvePublicKey)
        or key.public_key().public_numbers() != cert_key.public_numbers()
    ):
        raise InvalidInput(f"{key_path} does not match {pem_path}")
    if cert.not_valid_after_utc <= now:
        raise InvalidInput(f"the CA in {pem_path} has expired; use --force to make a new one")
    return CertificateAuthority(cert, key)


def write_dev_certs(
    out: Path,
    orgs: Sequence[tuple[str, Role]],
    *,
    force: bool = False,
    clock: Clock = utc_now,
) -> DevCertsResult:
    """Create (or extend) a directory of development certificates.

    Without ``force``: an existing valid CA in ``out`` is reused (so organisations can be added
    later), and any other file that would be overwritten is refused (InvalidInput) before
    anything is written. With ``force``: a new CA, server and client certificates replace all.
    """
    names = [org for org, _ in orgs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InvalidInput(f"organisation(s) given more than once: {', '.join(duplicates)}")
    for org, role in orgs:
        parse_org_role(f"{org}:{Role(role).value}")
    now = clock().astimezone(dt.UTC).replace(microsecond=0)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    ca = None if force else _load_ca(out, now)
    reused = ca is not None
    planned: list[str] = []
    if not reused:
        planned += ["ca.pem", "ca.key"]
    server_present = (out / "server.pem").exists() or (out / "server.key").exists()
    if not (reused and server_present):
        planned += ["server.pem", "server.key"]
    for org in names:
        planned += [f"{org}.pem", f"{org}.key"]
    if not force:
        clash = [name for name in planned if (out / name).exists()]
        if clash:
            raise InvalidInput(
                f"refusing to overwrite existing file(s) in {out}: {', '.join(clash)} "
                "(use --force to replace them)"
            )

    not_after = now + VALIDITY
    files: dict[str, tuple[bytes, int]] = {}
    if ca is None:
        ca = make_ca(not_before=now, not_after=not_after)
        files["ca.pem"] = (cert_pem(ca.cert), 0o644)
        files["ca.key"] = (key_pem(ca.key), 0o600)
    if "server.pem" in planned:
        cert, key = issue_server_cert(ca, not_before=now, not_after=not_after)
        files["server.pem"] = (cert_pem(cert), 0o644)
        files["server.key"] = (key_pem(key), 0o600)
    for org, role in orgs:
        cert, key = issue_client_cert(ca, org, role, not_before=now, not_after=not_after)
        files[f"{org}.pem"] = (cert_pem(cert), 0o644)
        files[f"{org}.key"] = (key_pem(key), 0o600)

    written: list[Path] = []
    # Keys first, certificates after: a half-finished run never leaves a cert without its key.
    for name in sorted(files, key=lambda n: (not n.endswith(".key"), n)):
        data, mode = files[name]
        atomic_write_bytes(out / name, data, mode=mode)
        (out / name).chmod(mode)
        written.append(out / name)
    return DevCertsResult(written, reused)
