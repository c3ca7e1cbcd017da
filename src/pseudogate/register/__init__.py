"""The public transparency register: a static website built from a data directory.

``build_register`` reads what the gateway recorded (datasets, versions, projects, opt-out
snapshots, released manifests, the latest audit checkpoint) and writes a complete static site:
HTML in the GOV.UK Design System, inline SVG charts, ``register.json`` and ``feed.atom``. It
publishes names, dates, rules, signatures and disclosure-controlled counts, never a token or a
row (docs/register.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pseudogate.core.clock import Clock, rfc3339, today_utc, utc_now
from pseudogate.core.keyring import Keyring
from pseudogate.register.disclosure import FEW, shown_count
from pseudogate.register.facts import PublicKey, RegisterFacts, read_facts
from pseudogate.register.site import FORMAT, register_document, render_site, write_site

__all__ = [
    "FEW",
    "FORMAT",
    "PublicKey",
    "RegisterFacts",
    "build_register",
    "public_keys_of",
    "read_facts",
    "register_document",
    "shown_count",
]


def public_keys_of(keyring: Keyring) -> list[PublicKey]:
    """The keyring's signing keys' public halves (primary first, disabled ones included)."""
    return [
        PublicKey(key_id=info.id, status=info.status.value, created=info.created, pem=pem)
        for info, pem in keyring.public_signing_keys()
    ]


def build_register(
    data_dir: Path,
    out: Path,
    *,
    public_keys: Sequence[PublicKey],
    clock: Clock = utc_now,
) -> RegisterFacts:
    """Build the register of ``data_dir`` into ``out`` (replaced atomically); returns its facts."""
    facts = read_facts(
        Path(data_dir),
        public_keys=public_keys,
        generated_at=rfc3339(clock(), precision="seconds"),
        today=today_utc(clock),
    )
    write_site(Path(out), lambda staging: render_site(facts, staging))
    return facts
