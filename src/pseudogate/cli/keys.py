"""``pseudogate keys``: create a keyring, list it, and rotate keys in stages.

Staged rotation (docs/keys.md): ``keys add`` a new key (active: recipients can be told about it
before it is used), ``keys promote ID`` to make it the primary for new outputs, and later
``keys disable ID`` for the old one. Nothing here ever prints or logs key material.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any, TextIO

from pseudogate.cli._common import EXAMPLE_KEYS_WARNING, fail, warn
from pseudogate.cli.keys_public import register_public
from pseudogate.core.keyring import (
    MASTER_KEY_ENV,
    KeyInfo,
    Keyring,
    KeyStatus,
    Purpose,
    generate_master_key_file,
    load_master_key,
)

__all__ = ["format_key_table", "register"]

log = logging.getLogger(__name__)

_COLUMNS = ("ID", "PURPOSE", "STATUS", "CREATED", "FINGERPRINT", "STORED")


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "keys", help="create, list and rotate keys", description=__doc__
    )
    keys_sub = p.add_subparsers(dest="keys_command", required=True, metavar="KEYS_COMMAND")

    gen = keys_sub.add_parser(
        "generate",
        help="create a new keyring with a primary key for every purpose",
        description="Create a new keyring (mode 0600) with a primary key for every purpose.",
    )
    gen.add_argument("--out", type=Path, required=True, help="keyring file to create")
    gen.add_argument(
        "--wrap",
        action="store_true",
        help=f"seal key material with AES-256-GCM under the master key in ${MASTER_KEY_ENV} "
        "(created, mode 0600, if that file does not exist yet)",
    )
    gen.set_defaults(handler=run_generate)

    lst = keys_sub.add_parser(
        "list", help="show ids, purposes, statuses, creation times and fingerprints"
    )
    lst.add_argument("--keyring", type=Path, required=True, help="keyring file")
    lst.set_defaults(handler=run_list)

    add = keys_sub.add_parser("add", help="rotation step 1: add a new (active) key for a purpose")
    add.add_argument("--keyring", type=Path, required=True, help="keyring file to change")
    add.add_argument(
        "--purpose", required=True, choices=[p.value for p in Purpose], help="what the key is for"
    )
    add.set_defaults(handler=run_add)

    promote = keys_sub.add_parser(
        "promote", help="rotation step 2: make a key the primary of its purpose"
    )
    promote.add_argument("key_id", metavar="ID", help="id of the key to promote")
    promote.add_argument("--keyring", type=Path, required=True, help="keyring file to change")
    promote.set_defaults(handler=run_promote)

    disable = keys_sub.add_parser(
        "disable", help="rotation step 3: disable a key that is no longer primary"
    )
    disable.add_argument("key_id", metavar="ID", help="id of the key to disable")
    disable.add_argument("--keyring", type=Path, required=True, help="keyring file to change")
    disable.set_defaults(handler=run_disable)
    # `keys public --server ADDR` (the gateway's public signing key) needs no keyring: it is a
    # gRPC client and lives apart from these commands.
    register_public(keys_sub)


def format_key_table(infos: list[KeyInfo]) -> str:
    """A plain-text table of key metadata: never material."""
    rows = [_COLUMNS] + [
        (
            i.id,
            i.purpose.value,
            i.status.value,
            i.created,
            i.fingerprint,
            "wrapped" if i.wrapped else "cleartext",
        )
        for i in infos
    ]
    widths = [max(len(r[c]) for r in rows) for c in range(len(_COLUMNS))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


def _master_key_for_wrapping(out: TextIO) -> bytes:
    name = os.environ.get(MASTER_KEY_ENV)
    if not name:
        fail(
            f"--wrap needs a master key: set {MASTER_KEY_ENV} to the path of the master key "
            "file (it is created, mode 0600, if it does not exist yet); keep that file apart "
            "from the keyring"
        )
    path = Path(name)
    if not path.exists():
        try:
            generate_master_key_file(path)
        except OSError as exc:
            fail(f"cannot create master key file {path}: {exc.strerror}")
        print(
            f"created master key file {path} (mode 0600); back it up and keep it apart from "
            "the keyring: without it the wrapped keys cannot be opened",
            file=out,
        )
    return load_master_key(path)


def run_generate(args: argparse.Namespace) -> int:
    out: Path = args.out
    if out.exists():
        fail(f"{out} already exists; refusing to overwrite a keyring")
    if not out.parent.is_dir():
        fail(f"folder {out.parent} does not exist")
    master = _master_key_for_wrapping(sys.stdout) if args.wrap else None
    ring = Keyring.generate(wrap_under=master)
    ring.save(out, overwrite=False)
    log.info("generated keyring %s with %d keys (wrapped=%s)", out, len(ring.infos()), args.wrap)
    print(f"created keyring {out} (mode 0600)")
    print(format_key_table(ring.infos()))
    if not args.wrap:
        warn(
            "note: key material is stored in CLEARTEXT; for production use --wrap with "
            f"{MASTER_KEY_ENV} set"
        )
    return 0


def _load(path: Path) -> Keyring:
    ring = Keyring.load(path)
    if ring.is_example:
        warn(EXAMPLE_KEYS_WARNING)
    return ring


def _load_for_change(path: Path) -> Keyring:
    ring = _load(path)
    if ring.is_example:
        fail(
            "refusing to change the EXAMPLE keyring: its keys are public; create your own with "
            "`pseudogate keys generate --out FILE --wrap`"
        )
    return ring


def run_list(args: argparse.Namespace) -> int:
    ring = _load(args.keyring)
    print(format_key_table(ring.infos()))
    return 0


def run_add(args: argparse.Namespace) -> int:
    ring = _load_for_change(args.keyring)
    info = ring.add(Purpose(args.purpose))
    ring.save(args.keyring)
    log.info("added %s key %s to %s", info.purpose.value, info.id, args.keyring)
    print(format_key_table([info]))
    if info.status is KeyStatus.PRIMARY:
        print(f"{info.id} is the primary {info.purpose.value} key (the purpose had no primary)")
    else:
        print(
            f"next: roll the new key out, then `pseudogate keys promote {info.id} "
            f"--keyring {args.keyring}`"
        )
    return 0


def run_promote(args: argparse.Namespace) -> int:
    ring = _load_for_change(args.keyring)
    info = ring.promote(args.key_id)
    ring.save(args.keyring)
    log.info("promoted key %s in %s", info.id, args.keyring)
    print(f"{info.id} is now the primary {info.purpose.value} key")
    print(format_key_table(ring.infos()))
    return 0


def run_disable(args: argparse.Namespace) -> int:
    ring = _load_for_change(args.keyring)
    info = ring.disable(args.key_id)
    ring.save(args.keyring)
    log.info("disabled key %s in %s", info.id, args.keyring)
    print(f"{info.id} is now disabled")
    print(format_key_table(ring.infos()))
    return 0
