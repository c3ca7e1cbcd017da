"""``pseudogate serve``: run the gateway until interrupted."""

from __future__ import annotations

import argparse
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pseudogate.cli._common import EXAMPLE_KEYS_WARNING, warn
from pseudogate.core.keyring import Keyring
from pseudogate.core.rights import DEFAULT_EXPIRY_DAYS, DEFAULT_MAX_TOKENS, RightsSettings
from pseudogate.service.app import GatewaySettings, load_keyring, start_gateway
from pseudogate.service.limits import StreamLimits
from pseudogate.service.transport import check_transport, tls_files

if TYPE_CHECKING:
    from pseudogate.register.publisher import RegisterPublisher

LIMITS = StreamLimits()  # the defaults
#: How often ``--register-dir`` checks whether the register must be rebuilt.
REGISTER_REFRESH_SECONDS = 1.0
INSECURE_WARNING = (
    "WARNING: --insecure: plaintext gRPC with NO client authentication. Every caller is "
    "organisation 'insecure' with all roles. For development on this machine only."
)


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("serve", help="run the gateway (gRPC)")
    p.add_argument("--config", type=Path, help="server config YAML (domains); built-in when absent")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=50051, help="port (default 50051; 0 = any free)")
    p.add_argument("--keyring", type=Path, help="keyring file (default: the EXAMPLE keyring)")
    p.add_argument(
        "--data-dir", type=Path, required=True, help="data directory (created if missing)"
    )
    p.add_argument(
        "--policies",
        type=Path,
        required=True,
        help="folder of registered ingestion policies (*.yaml, named by file stem)",
    )
    p.add_argument("--ca", type=Path, help="CA certificate (PEM) that client certificates chain to")
    p.add_argument("--cert", type=Path, help="server certificate (PEM)")
    p.add_argument("--key", type=Path, help="server private key (PEM)")
    p.add_argument("--insecure", action="store_true", help="plaintext on loopback, no client identity")
    p.add_argument(
        "--production",
        action="store_true",
        help="refuse the example keyring, cleartext key material, --insecure, and a keyring "
        "or data directory accessible by group or others",
    )
    p.add_argument(
        "--register-dir", type=Path, metavar="SITE",
        help="keep the public transparency register in this folder, rebuilt (atomically) after "
        "every change: submission, project, extract, opt-out snapshot, audit checkpoint "
        "(docs/register.md)",
    )
    p.add_argument(
        "--dask-scheduler", metavar="ADDRESS",
        help="anonymise extracts on this running Dask scheduler (tls://HOST:PORT, or tcp:// "
        "on this machine only); its workers must see the data directory (docs/operations.md)",
    )
    _add_limit_arguments(p)
    p.add_argument("--ready-file", type=Path, help=argparse.SUPPRESS)
    p.set_defaults(handler=run)


def _add_limit_arguments(p: argparse.ArgumentParser) -> None:
    """Fair sharing between organisations (docs/operations.md says what each limit bounds)."""
    g = p.add_argument_group("limits")
    g.add_argument(
        "--idle-stream-timeout",
        type=float,
        default=LIMITS.idle_timeout,
        metavar="SECONDS",
        help="close a stream on which nothing moves for this long "
        f"(default {LIMITS.idle_timeout:g})",
    )
    for flag, default, what in (
        ("--max-streams-per-org", LIMITS.max_streams_per_org, "open streams per organisation"),
        ("--max-extracts-per-org", LIMITS.max_extracts_per_org, "extracts per organisation"),
        ("--max-extracts", LIMITS.max_extracts, "concurrent extracts, gateway-wide"),
    ):
        g.add_argument(
            flag, type=int, default=default, metavar="N", help=f"{what} (default {default})"
        )
    g.add_argument(
        "--storage-quota-per-org",
        type=_byte_size,
        metavar="BYTES",
        help="stored data per organisation, e.g. 500M or 10G (default: no quota)",
    )
    r = p.add_argument_group("people's rights requests (docs/rights.md)")
    r.add_argument(
        "--request-expiry-days", type=int, default=DEFAULT_EXPIRY_DAYS, metavar="DAYS",
        help=f"a request not approved within this many days expires (default {DEFAULT_EXPIRY_DAYS})",
    )
    r.add_argument(
        "--reidentify-max-tokens", type=int, default=DEFAULT_MAX_TOKENS, metavar="N",
        help=f"project tokens per re-identification request (default {DEFAULT_MAX_TOKENS})",
    )


def _byte_size(text: str) -> int:
    """Bytes, with an optional K, M, G or T suffix (powers of 1024)."""
    units = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    number, unit = text.strip().upper().removesuffix("B"), ""
    if number and number[-1] in units:
        number, unit = number[:-1], number[-1]
    try:
        value = int(float(number) * units[unit])
    except (ValueError, OverflowError):
        raise argparse.ArgumentTypeError(f"not a size in bytes: {text!r} (e.g. 10G)") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("the storage quota must be positive")
    return value


def settings_from_args(args: argparse.Namespace) -> GatewaySettings:
    tls = tls_files(args.ca, args.cert, args.key)
    check_transport(host=args.host, tls=tls, insecure=args.insecure, production=args.production)
    return GatewaySettings(
        host=args.host,
        port=args.port,
        keyring=args.keyring,
        config=args.config,
        data_dir=args.data_dir,
        policies=args.policies,
        tls=tls,
        insecure=args.insecure,
        production=args.production,
        limits=_limits(args),
        storage_quota_per_org=args.storage_quota_per_org,
        rights=RightsSettings(
            expiry_days=args.request_expiry_days, max_tokens=args.reidentify_max_tokens
        ),
        dask_scheduler=args.dask_scheduler,
    )


def _register_publisher(args: argparse.Namespace, keyring: Keyring) -> RegisterPublisher | None:
    if args.register_dir is None:
        return None
    from pseudogate.register import public_keys_of
    from pseudogate.register.publisher import RegisterPublisher

    print(f"pseudogate: register kept up to date in {args.register_dir}", flush=True)
    return RegisterPublisher(
        data_dir=args.data_dir, out=args.register_dir, public_keys=public_keys_of(keyring)
    )


def _limits(args: argparse.Namespace) -> StreamLimits:
    """The limits given (a ConfigurationError, exit status 2, for a value out of range)."""
    return StreamLimits(
        idle_timeout=args.idle_stream_timeout,
        max_streams_per_org=args.max_streams_per_org,
        max_extracts_per_org=args.max_extracts_per_org,
        max_extracts=args.max_extracts,
    )


def run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    keyring = load_keyring(settings)
    if keyring.is_example:
        warn(EXAMPLE_KEYS_WARNING)
    if settings.insecure:
        warn(INSECURE_WARNING)
    # The handler only appends to a list: a handler that takes a lock (Event.set) can deadlock
    # with the main thread holding that same lock when the signal arrives. Installed before
    # start-up, so a signal that comes as soon as the ready file exists still stops cleanly.
    stopping: list[int] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, _frame: stopping.append(signum))
    gateway = start_gateway(settings, notice=warn)
    publisher = _register_publisher(args, keyring)
    print(f"pseudogate: serving on {settings.host}:{gateway.port}", flush=True)
    if args.ready_file:
        args.ready_file.write_text(f"{gateway.port}\n", encoding="utf-8")
    next_refresh = 0.0
    while not stopping:
        if publisher is not None and time.monotonic() >= next_refresh:
            publisher.refresh()  # a no-op unless something changed; never raises
            next_refresh = time.monotonic() + REGISTER_REFRESH_SECONDS
        time.sleep(0.2)
    print("pseudogate: shutting down", flush=True)
    gateway.stop()
    if publisher is not None:
        publisher.refresh()  # the checkpoint signed at shutdown
    return 0
