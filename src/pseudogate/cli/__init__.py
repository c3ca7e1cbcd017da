"""The ``pseudogate`` command line: validates arguments and delegates to the core.

Each sub-command lives in its own module exposing ``register(subparsers)``; the module sets
``handler`` on its parser. Domain errors become a one-line message and exit status 2
(invalid input) or 1 (anything else); values are never echoed.

Every command runs with umask 077: whatever it creates (data directory, keyrings, tokenised
files, extracts, reports, audit exports) is readable by its owner only, since any of them may be
sensitive. Share an output on purpose with ``chmod``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from pseudogate.core.errors import ErrorCode, PseudogateError

__all__ = ["COMMAND_MODULES", "UMASK", "main"]

#: Group and others get nothing on anything a command creates (see the module docstring).
UMASK = 0o077

#: Sub-command modules, in the order ``--help`` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "keys",
    "tokenise",
    "serve",
    "submit",
    "extract",
    "project",
    "optout",
    "linkage_report",
    "link",
    "demo",
    "anonymise",
    "policy",
    "dev_certs",
    "audit",
    "verify_extract",
    "register",
)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser of every sub-command, or of ``only`` (a module name) when it is known.

    Importing every sub-command's module (pandas, grpc, the anonymity engine...) costs most of
    a second; a command needs only its own, so ``main`` builds the parser of the command being
    run. ``--help`` and unknown commands get the full parser, so their output is unchanged.
    """
    parser = argparse.ArgumentParser(
        prog="pseudogate",
        description="Privacy-preserving pseudonymisation gateway.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log more detail")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES if only is None else (only,):
        importlib.import_module(f"pseudogate.cli.{name}").register(sub)
    return parser


def _command_module(argv: Sequence[str]) -> str | None:
    """The module of the sub-command ``argv`` names, if it names one (else None)."""
    for token in argv:
        if token in ("-h", "--help"):
            return None
        if not token.startswith("-"):
            name = token.replace("-", "_")
            return name if name in COMMAND_MODULES else None
    return None


def main(argv: Sequence[str] | None = None) -> int:
    previous = os.umask(UMASK)  # before anything is created; restored for in-process callers
    try:
        return _run(argv)
    finally:
        os.umask(previous)


def _run(argv: Sequence[str] | None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_command_module(arguments))
    args = parser.parse_args(arguments)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return int(args.handler(args) or 0)
    except PseudogateError as exc:
        print(f"pseudogate {args.command}: error: {exc}", file=sys.stderr)
        return 2 if exc.code in (ErrorCode.INVALID_ARGUMENT, ErrorCode.FAILED_PRECONDITION) else 1
    except KeyboardInterrupt:
        print(f"pseudogate {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
