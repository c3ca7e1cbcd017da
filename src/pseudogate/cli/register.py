"""``pseudogate register build``: the public transparency register, as a static website."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pseudogate.core.keyring import EXAMPLE_KEYRING, Keyring
from pseudogate.register import build_register, public_keys_of


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "register", help="build the public transparency register (a static website)"
    )
    actions = p.add_subparsers(dest="register_command", required=True, metavar="ACTION")
    build = actions.add_parser(
        "build", help="write the register of a data directory as a static site (atomically)"
    )
    build.add_argument("--data-dir", type=Path, required=True, help="the gateway's data directory")
    build.add_argument(
        "--out", type=Path, required=True,
        help="the site's folder: new, empty, or a register built before (replaced atomically)",
    )
    build.add_argument(
        "--keyring", type=Path,
        help="the gateway's keyring, for its public signing keys (default: the EXAMPLE keyring)",
    )
    build.set_defaults(handler=run_build)


def run_build(args: argparse.Namespace) -> int:
    keyring = Keyring.load(args.keyring or EXAMPLE_KEYRING)
    facts = build_register(args.data_dir, args.out, public_keys=public_keys_of(keyring))
    summary = facts.summary
    print(
        f"register built in {args.out}: {summary['organisations']} organisation(s), "
        f"{summary['datasets']} dataset(s), {summary['projects']} project(s), "
        f"{summary['releases']} release(s); open {Path(args.out).absolute() / 'index.html'}"
    )
    return 0
