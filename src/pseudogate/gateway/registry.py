"""The registered ingestion policies: the YAML files of one folder, named by file stem."""

from __future__ import annotations

import logging
from pathlib import Path

from pseudogate.core.errors import ConfigurationError, InvalidInput
from pseudogate.core.policy import Policy, load_policy, require_ingestion_policy

__all__ = ["load_policy_registry"]

log = logging.getLogger("pseudogate.gateway.registry")  # name kept across moves

_SUFFIXES = (".yaml", ".yml")


def load_policy_registry(folder: str | Path) -> dict[str, Policy]:
    """Every ``*.yaml``/``*.yml`` policy in ``folder`` by stem; each must be an ingestion policy.

    Fails closed: one invalid file stops everything, with a message naming the file (and the
    line or column the policy parser names).
    """
    root = Path(folder)
    if not root.is_dir():
        raise ConfigurationError(f"policies folder {root} does not exist or is not a folder")
    policies: dict[str, Policy] = {}
    for path in sorted(p for p in root.iterdir() if p.suffix in _SUFFIXES and p.is_file()):
        if path.stem in policies:
            raise ConfigurationError(
                f"policies folder {root}: two files are named {path.stem!r} (.yaml and .yml)"
            )
        try:
            policy = load_policy(path)
            require_ingestion_policy(policy)
        except InvalidInput as exc:
            message = str(exc)
            if str(path) not in message:
                message = f"policy file {path}: {message}"
            raise ConfigurationError(message) from None
        policies[path.stem] = policy
    if not policies:
        # Deliberately empty: a tokenisation-only gateway. Submissions will name no policy.
        log.warning("policies folder %s holds no .yaml policy files: submissions are refused", root)
    return policies
