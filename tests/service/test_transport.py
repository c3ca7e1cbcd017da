"""Transport security is decided in service/transport.py, with one message per refusal."""

from __future__ import annotations

from pathlib import Path

import pytest

from pseudogate.cli import main
from pseudogate.core.errors import ConfigurationError
from pseudogate.service.access import InsecureAccess
from pseudogate.service.app import GatewaySettings, start_gateway
from pseudogate.service.server import build_server
from pseudogate.service.transport import (
    LOOPBACK_PLAINTEXT,
    TlsFiles,
    Transport,
    check_transport,
    is_loopback,
    tls_files,
)

TLS = TlsFiles(Path("ca.pem"), Path("server.pem"), Path("server.key"))
NOTHING = (
    "no transport security: give --ca, --cert and --key for mutual TLS, "
    "or --insecure for plaintext on loopback (development only)"
)


@pytest.mark.parametrize(
    ("host", "tls", "insecure", "production", "message"),
    [
        ("127.0.0.1", TLS, True, False, "choose either --ca/--cert/--key (mTLS) or --insecure, not both"),
        ("127.0.0.1", None, False, False, NOTHING),
        ("0.0.0.0", None, False, True, NOTHING),
        ("0.0.0.0", None, True, True, "--insecure binds to loopback only; 0.0.0.0 is not a loopback address"),
        ("::1", None, True, True, "--production refuses --insecure"),
    ],
)
def test_when_transport_settings_are_weak_then_the_first_thing_to_fix_is_named(
    host: str, tls: TlsFiles | None, insecure: bool, production: bool, message: str
) -> None:
    with pytest.raises(ConfigurationError) as err:
        check_transport(host=host, tls=tls, insecure=insecure, production=production)
    assert str(err.value) == message


@pytest.mark.parametrize(
    ("host", "tls", "insecure", "plaintext"),
    [
        ("0.0.0.0", TLS, False, False),
        ("gateway.example", TLS, False, False),
        ("localhost", None, True, True),
        ("127.0.0.2", None, True, True),
        ("[::1]", None, True, True),
    ],
)
def test_when_transport_settings_are_sound_then_the_decision_says_what_is_served(
    host: str, tls: TlsFiles | None, insecure: bool, plaintext: bool
) -> None:
    transport = check_transport(host=host, tls=tls, insecure=insecure, production=not insecure)
    assert transport == Transport(host=host, tls=tls)
    assert transport.plaintext is plaintext
    assert transport.describe() == ("plaintext, loopback" if plaintext else "mTLS")


def test_when_a_plaintext_transport_is_made_off_loopback_then_it_is_refused() -> None:
    with pytest.raises(ConfigurationError) as err:
        Transport(host="10.0.0.1", tls=None)
    assert str(err.value) == (
        "refusing plaintext on 10.0.0.1: without TLS the gateway binds to loopback only"
    )
    assert LOOPBACK_PLAINTEXT.plaintext and is_loopback(LOOPBACK_PLAINTEXT.host)


@pytest.mark.parametrize(
    "given",
    [(Path("ca"), None, None), (None, Path("cert"), Path("key")), (Path("ca"), Path("c"), None)],
)
def test_when_only_some_mtls_files_are_given_then_all_three_are_asked_for(
    given: tuple[Path | None, Path | None, Path | None],
) -> None:
    with pytest.raises(ConfigurationError, match="^mTLS needs all three of --ca, --cert and --key$"):
        tls_files(*given)


def test_when_no_or_all_mtls_files_are_given_then_none_or_the_three_files() -> None:
    assert tls_files(None, None, None) is None
    assert tls_files(TLS.ca, TLS.cert, TLS.key) == TLS


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--ca", "ca.pem"], "mTLS needs all three of --ca, --cert and --key"),
        (["--ca", "a", "--cert", "b", "--key", "c", "--insecure"], "choose either --ca/--cert/--key"),
        (["--insecure", "--host", "::"], "--insecure binds to loopback only; :: is not a loopback"),
    ],
)
def test_when_serve_is_given_weak_transport_flags_then_it_exits_2_with_the_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    code = main(["serve", "--port", "0", "--data-dir", str(tmp_path / "d"), "--policies",
                 str(tmp_path), *flags])
    err = capsys.readouterr().err
    assert code == 2 and f"pseudogate serve: error: {message}" in err
    assert not (tmp_path / "d").exists()  # refused before anything was created


def test_when_start_gateway_is_asked_for_plaintext_off_loopback_then_it_refuses_before_storing(
    tmp_path: Path,
) -> None:
    settings = GatewaySettings(host="0.0.0.0", port=0, insecure=True, data_dir=tmp_path / "d")
    with pytest.raises(ConfigurationError, match="--insecure binds to loopback only"):
        start_gateway(settings)
    with pytest.raises(ConfigurationError, match="^no transport security"):
        start_gateway(GatewaySettings(port=0, data_dir=tmp_path / "d"))
    assert not (tmp_path / "d").exists()


def test_when_build_server_has_no_transport_then_it_serves_plaintext_on_loopback() -> None:
    server = build_server(services=[], access=InsecureAccess(), audit=None)
    try:
        assert server.port > 0
    finally:
        server.stop(grace=None)
