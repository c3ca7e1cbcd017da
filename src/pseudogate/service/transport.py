"""Transport security, decided in one place: mutual TLS, or plaintext on loopback only.

``pseudogate serve``, :func:`~pseudogate.service.app.start_gateway` and
:func:`~pseudogate.service.server.build_server` all go through this module, so a weak
configuration is refused with the same words whichever door it comes in by:

- mTLS needs all three of the CA, the server certificate and its key;
- mTLS and ``--insecure`` exclude each other, and one of them must be chosen;
- plaintext (``--insecure``) binds to loopback only, and ``--production`` refuses it.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

import grpc

from pseudogate.core.errors import ConfigurationError

__all__ = ["LOOPBACK_PLAINTEXT", "TlsFiles", "Transport", "check_transport", "is_loopback", "tls_files"]


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """The CA that client certificates chain to, and the server's certificate and key (PEM)."""

    ca: Path
    cert: Path
    key: Path

    def credentials(self) -> grpc.ServerCredentials:
        try:
            ca = self.ca.read_bytes()
            cert = self.cert.read_bytes()
            key = self.key.read_bytes()
        except OSError as exc:
            raise ConfigurationError(f"cannot read TLS file {exc.filename}: {exc.strerror}") from None
        return grpc.ssl_server_credentials(
            [(key, cert)], root_certificates=ca, require_client_auth=True
        )


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (``127.0.0.0/8``, ``::1``, ``[::1]``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class Transport:
    """Where the gateway listens and how: mTLS with ``tls``, or plaintext (``tls`` None).

    A plaintext Transport on an address other than loopback cannot be made.
    """

    host: str
    tls: TlsFiles | None

    def __post_init__(self) -> None:
        if self.tls is None and not is_loopback(self.host):
            raise ConfigurationError(
                f"refusing plaintext on {self.host}: without TLS the gateway binds to loopback only"
            )

    @property
    def plaintext(self) -> bool:
        """No TLS: no client identity either (every caller is organisation 'insecure')."""
        return self.tls is None

    def describe(self) -> str:
        """For logs: "mTLS" or "plaintext, loopback"."""
        return "plaintext, loopback" if self.tls is None else "mTLS"


#: The transport of test and benchmark servers: plaintext on 127.0.0.1.
LOOPBACK_PLAINTEXT = Transport(host="127.0.0.1", tls=None)


def tls_files(ca: Path | None, cert: Path | None, key: Path | None) -> TlsFiles | None:
    """The three mTLS files (``--ca``, ``--cert``, ``--key``), or None when none is given."""
    given = (ca, cert, key)
    if not any(given):
        return None
    if ca is None or cert is None or key is None:
        raise ConfigurationError("mTLS needs all three of --ca, --cert and --key")
    return TlsFiles(ca, cert, key)


def check_transport(*, host: str, tls: TlsFiles | None, insecure: bool, production: bool) -> Transport:
    """The transport these settings ask for, or a ConfigurationError saying why it is refused.

    Checked in this order, so that one refusal names the first thing to fix.
    """
    if tls is not None and insecure:
        raise ConfigurationError("choose either --ca/--cert/--key (mTLS) or --insecure, not both")
    if tls is None and not insecure:
        raise ConfigurationError(
            "no transport security: give --ca, --cert and --key for mutual TLS, "
            "or --insecure for plaintext on loopback (development only)"
        )
    if insecure and not is_loopback(host):
        raise ConfigurationError(f"--insecure binds to loopback only; {host} is not a loopback address")
    if production and insecure:
        raise ConfigurationError("--production refuses --insecure")
    return Transport(host=host, tls=tls)
