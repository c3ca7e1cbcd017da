"""Batch tokenisation of one domain's values: the recipe providers call.

A *domain* names a population of identifiers that must link (``person`` for NHS numbers,
``email``, ...): it selects the normalisation kind and, through the key derivation, the token
space. Domains come from the server's config; the default config knows one domain per kind,
named after it, plus ``person`` (NHS numbers, the linkage domain that stored datasets,
projects and opt-outs use by default).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pseudogate.core.columns import tokenise_list
from pseudogate.core.errors import ConfigurationError, InvalidInput, ResourceExhausted, shown
from pseudogate.core.keyring import Keyring
from pseudogate.core.names import DEFAULT_DOMAIN, DOMAIN_PATTERN, DOMAIN_RE
from pseudogate.core.normalise import Kind
from pseudogate.core.tokens import Tokeniser

__all__ = [
    "DEFAULT_DOMAINS",
    "MAX_BATCH_VALUES",
    "MAX_VALUE_CHARS",
    "DomainConfig",
    "Tokenisation",
    "TokenisationResult",
    "load_domain_config",
]

DEFAULT_DOMAINS: Mapping[str, Kind] = {
    **{k.value: k for k in Kind},
    DEFAULT_DOMAIN: Kind.NHS_NUMBER,
}
MAX_BATCH_VALUES = 100_000
MAX_VALUE_CHARS = 1_024


@dataclass(frozen=True, slots=True)
class DomainConfig:
    """Domain name -> identifier kind, plus batch limits."""

    domains: Mapping[str, Kind]
    max_batch_values: int = MAX_BATCH_VALUES

    def kind_of(self, domain: str) -> Kind:
        try:
            return self.domains[domain]
        except KeyError:
            raise InvalidInput(
                f"unknown domain {shown(domain)}; known domains: {', '.join(sorted(self.domains))}"
            ) from None


def load_domain_config(path: str | Path | None) -> DomainConfig:
    """Read the ``domains`` (and optional ``max_batch_values``) of a server config file.

    With no file, the built-in config: :data:`DEFAULT_DOMAINS`.
    """
    if path is None:
        return DomainConfig(dict(DEFAULT_DOMAINS))
    p = Path(path)
    from pseudogate.core.policy import load_bounded_yaml

    try:
        data: Any = load_bounded_yaml(p.read_text(encoding="utf-8"), origin=str(p))
    except OSError as exc:
        raise ConfigurationError(f"cannot read config {p}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigurationError(f"config {p} is not UTF-8 text") from None
    if not isinstance(data, dict):
        raise ConfigurationError(f"config {p}: top level must be a mapping")
    unknown = set(data) - {"domains", "max_batch_values"}
    if unknown:
        names = ", ".join(shown(str(u)) for u in sorted(unknown, key=str))
        raise ConfigurationError(f"config {p}: unknown setting(s) {names}")
    raw = data.get("domains")
    if not isinstance(raw, dict) or not raw:
        raise ConfigurationError(f"config {p}: 'domains' must map domain names to kinds")
    domains: dict[str, Kind] = {}
    for name, kind in raw.items():
        if not isinstance(name, str) or not DOMAIN_RE.fullmatch(name):
            raise ConfigurationError(f"config {p}: domain name {name!r} must match {DOMAIN_PATTERN}")
        try:
            domains[name] = Kind(kind)
        except ValueError:
            raise ConfigurationError(
                f"config {p}: domain {name!r} has unknown kind {kind!r} "
                f"(kinds: {', '.join(k.value for k in Kind)})"
            ) from None
    limit = data.get("max_batch_values", MAX_BATCH_VALUES)
    if not isinstance(limit, int) or limit < 1:
        raise ConfigurationError(f"config {p}: 'max_batch_values' must be a positive integer")
    return DomainConfig(domains, limit)


@dataclass(frozen=True, slots=True)
class TokenisationResult:
    """tokens[i] is the token of values[i] or "" where invalid; errors are (index, reason)."""

    tokens: list[str]
    errors: list[tuple[int, str]]
    key_id: str


class Tokenisation:
    """Tokenises batches for configured domains with the primary linkage key."""

    def __init__(self, *, keyring: Keyring, config: DomainConfig) -> None:
        self._config = config
        self._tokenisers: dict[str, Tokeniser] = {
            name: keyring.linkage_tokeniser(name) for name in config.domains
        }

    @property
    def config(self) -> DomainConfig:
        return self._config

    def tokenise(self, domain: str, values: Sequence[str]) -> TokenisationResult:
        kind = self._config.kind_of(domain)
        if len(values) > self._config.max_batch_values:
            raise ResourceExhausted(
                f"batch of {len(values)} values exceeds the limit of "
                f"{self._config.max_batch_values} values per message; split it into smaller batches"
            )
        tokeniser = self._tokenisers[domain]
        done = tokenise_list(values, kind=kind, tokeniser=tokeniser, max_chars=MAX_VALUE_CHARS)
        return TokenisationResult(done.tokens, done.errors, tokeniser.key_id)
