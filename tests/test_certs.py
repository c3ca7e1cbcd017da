"""dev-certs: the certificate contract, file handling, and a real mTLS handshake."""

from __future__ import annotations

import datetime as dt
import ipaddress
import stat
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pseudogate import cli
from pseudogate.core.authz import Identity, Role, identity_from_certificate
from pseudogate.core.errors import InvalidInput, PermissionDenied
from pseudogate.tools.certs import (
    CertificateAuthority,
    cert_pem,
    issue_client_cert,
    issue_server_cert,
    key_pem,
    make_ca,
    parse_org_role,
    uri_sans,
    write_dev_certs,
)

ORGS = [
    "gp-denbigh:provider",
    "uni-bangor:researcher",
    "audit-office:auditor",
    "ops:admin",
]


def run_cli(monkeypatch: pytest.MonkeyPatch, *argv: str) -> int:
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("dev_certs",))
    return cli.main(list(argv))


def _org_args() -> list[str]:
    return [arg for spec in ORGS for arg in ("--org", spec)]


@pytest.fixture
def certs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    out = tmp_path / "certs"
    assert run_cli(monkeypatch, "dev-certs", "--out", str(out), *_org_args()) == 0
    return out


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _eku(cert: x509.Certificate) -> list[x509.ObjectIdentifier]:
    return list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


def test_when_dev_certs_runs_then_it_writes_every_file_with_private_keys_0600(certs: Path) -> None:
    names = {"ca", "server", "gp-denbigh", "uni-bangor", "audit-office", "ops"}
    assert {p.name for p in certs.iterdir()} == {f"{n}.{e}" for n in names for e in ("pem", "key")}
    for key in certs.glob("*.key"):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        assert key.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")


def test_when_certs_are_made_then_they_are_p256_valid_30_days_and_signed_by_the_ca(
    certs: Path,
) -> None:
    ca = _cert(certs / "ca.pem")
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    for path in certs.glob("*.pem"):
        cert = _cert(path)
        key = cert.public_key()
        assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1"
        assert cert.not_valid_after_utc - cert.not_valid_before_utc == dt.timedelta(days=30)
        assert cert.not_valid_before_utc <= dt.datetime.now(dt.UTC)
        cert.verify_directly_issued_by(ca)


def test_when_the_server_cert_is_made_then_it_names_localhost_and_loopback(certs: Path) -> None:
    server = _cert(certs / "server.pem")
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert _eku(server) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert not server.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


@pytest.mark.parametrize("spec", ORGS)
def test_when_client_certs_are_made_then_each_carries_its_spiffe_identity(
    certs: Path, spec: str
) -> None:
    org, role = spec.split(":")
    cert = _cert(certs / f"{org}.pem")
    assert _eku(cert) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert uri_sans(cert) == [f"spiffe://pseudogate/org/{org}/role/{role}"]
    assert identity_from_certificate((certs / f"{org}.pem").read_bytes()) == Identity.of(
        org, Role(role)
    )
    assert identity_from_certificate(cert.public_bytes(encoding=Encoding.DER)) == Identity.of(
        org, Role(role)
    )


def test_when_files_exist_then_they_are_refused_without_force(
    certs: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    before = (certs / "gp-denbigh.pem").read_bytes()
    code = run_cli(monkeypatch, "dev-certs", "--out", str(certs), "--org", "gp-denbigh:provider")
    assert code == 2
    assert "gp-denbigh.pem" in capsys.readouterr().err
    assert (certs / "gp-denbigh.pem").read_bytes() == before


def test_when_forced_then_everything_is_replaced_with_a_new_ca(
    certs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old_ca = (certs / "ca.pem").read_bytes()
    assert run_cli(monkeypatch, "dev-certs", "--out", str(certs), "--org", "ops:admin", "--force") == 0
    assert (certs / "ca.pem").read_bytes() != old_ca
    _cert(certs / "ops.pem").verify_directly_issued_by(_cert(certs / "ca.pem"))


def test_when_an_org_is_added_later_then_the_existing_ca_signs_it(
    certs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old_ca = (certs / "ca.pem").read_bytes()
    old_server = (certs / "server.pem").read_bytes()
    assert run_cli(monkeypatch, "dev-certs", "--out", str(certs), "--org", "council-x:provider") == 0
    assert (certs / "ca.pem").read_bytes() == old_ca
    assert (certs / "server.pem").read_bytes() == old_server
    _cert(certs / "council-x.pem").verify_directly_issued_by(_cert(certs / "ca.pem"))


@pytest.mark.parametrize(
    "spec",
    ["GP:provider", "gp_x:provider", "gp:superuser", "gp", "ca:admin", "server:admin", ":admin"],
)
def test_when_an_org_spec_is_invalid_then_it_is_refused_with_status_2(
    spec: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "c"
    assert run_cli(monkeypatch, "dev-certs", "--out", str(out), "--org", spec) == 2
    assert not out.exists() or not any(out.iterdir())


def test_when_an_org_is_given_twice_then_it_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="more than once"):
        write_dev_certs(tmp_path, [("a", Role.ADMIN), ("a", Role.AUDITOR)])


def test_when_the_ca_key_is_missing_then_it_is_refused(certs: Path) -> None:
    (certs / "ca.key").unlink()
    with pytest.raises(InvalidInput, match="only one of"):
        write_dev_certs(certs, [("new-org", Role.ADMIN)])


def test_when_the_existing_ca_is_not_an_ec_certificate_then_it_is_refused(certs: Path) -> None:
    # An Ed25519 CA certificate has no public numbers: it used to escape as an AttributeError.
    key = ed25519.Ed25519PrivateKey.generate()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "other ca")])
    now = dt.datetime.now(dt.UTC)
    other = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(1)
        .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=5))
        .sign(key, None)
    )
    (certs / "ca.pem").write_bytes(other.public_bytes(Encoding.PEM))
    with pytest.raises(InvalidInput, match="does not match"):
        write_dev_certs(certs, [("new-org", Role.ADMIN)])


def test_when_parsing_org_specs_then_roles_are_enums() -> None:
    assert parse_org_role("uni-bangor:researcher") == ("uni-bangor", Role.RESEARCHER)


# -- helpers for handshake tests: expired certificates, a second CA ----------------------------


NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


def _ca() -> CertificateAuthority:
    return make_ca(not_before=NOW - dt.timedelta(days=1), not_after=NOW + dt.timedelta(days=30))


def test_when_a_client_cert_is_issued_with_past_dates_then_it_is_expired() -> None:
    cert, _ = issue_client_cert(
        _ca(), "late", Role.PROVIDER,
        not_before=NOW - dt.timedelta(days=60), not_after=NOW - dt.timedelta(days=30),
    )
    assert cert.not_valid_after_utc < NOW


def test_when_uris_are_overridden_then_the_certificate_carries_exactly_them() -> None:
    ca = _ca()
    none, _ = issue_client_cert(ca, "x", Role.ADMIN, not_before=NOW, not_after=NOW, uris=[])
    two, _ = issue_client_cert(
        ca, "x", Role.ADMIN, not_before=NOW, not_after=NOW,
        uris=["spiffe://pseudogate/org/a/role/admin", "spiffe://pseudogate/org/b/role/admin"],
    )
    assert uri_sans(none) == []
    with pytest.raises(PermissionDenied):
        identity_from_certificate(cert_pem(none))
    with pytest.raises(PermissionDenied):
        identity_from_certificate(cert_pem(two))


def test_when_a_certificate_is_garbage_then_it_is_refused() -> None:
    with pytest.raises(InvalidInput):
        uri_sans(b"not a certificate")


# -- a real mTLS handshake with the files ------------------------------------------------------


def _serve(ca: bytes, cert: bytes, key: bytes) -> tuple[grpc.Server, int, list[str]]:
    seen: list[str] = []

    def whoami(request: bytes, context: grpc.ServicerContext) -> bytes:
        pem = context.auth_context()["x509_pem_cert"][0]
        seen.append(identity_from_certificate(pem).organisation)
        return b"ok"

    handler = grpc.method_handlers_generic_handler(
        "test.Echo", {"WhoAmI": grpc.unary_unary_rpc_method_handler(whoami)}
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2), handlers=[handler])
    creds = grpc.ssl_server_credentials([(key, cert)], root_certificates=ca, require_client_auth=True)
    port = server.add_secure_port("127.0.0.1:0", creds)
    server.start()
    return server, port, seen


def _call(port: int, ca: bytes, cert: bytes, key: bytes) -> bytes:
    creds = grpc.ssl_channel_credentials(ca, key, cert)
    with grpc.secure_channel(f"localhost:{port}", creds) as channel:
        stub = channel.unary_unary("/test.Echo/WhoAmI")
        return stub(b"", timeout=5)


def test_when_a_client_presents_its_dev_cert_then_mtls_succeeds_and_yields_its_identity(
    certs: Path,
) -> None:
    read = lambda name: (certs / name).read_bytes()
    server, port, seen = _serve(read("ca.pem"), read("server.pem"), read("server.key"))
    try:
        assert _call(port, read("ca.pem"), read("uni-bangor.pem"), read("uni-bangor.key")) == b"ok"
        assert seen == ["uni-bangor"]
        other = _ca()
        cert, key = issue_client_cert(
            other, "rogue", Role.ADMIN, not_before=NOW, not_after=NOW + dt.timedelta(days=1)
        )
        with pytest.raises(grpc.RpcError):
            _call(port, read("ca.pem"), cert_pem(cert), key_pem(key))
        assert seen == ["uni-bangor"]
    finally:
        server.stop(None)


def test_when_a_server_cert_is_issued_for_other_names_then_they_are_in_the_san() -> None:
    cert, _ = issue_server_cert(
        _ca(), not_before=NOW, not_after=NOW + dt.timedelta(days=1),
        dns_names=["gateway.example"], ip_addresses=["::1"],
    )
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["gateway.example"]
