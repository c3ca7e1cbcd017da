"""``pseudogate policy check FILE``: validate a policy and print its fingerprint.

An auditor compares the printed fingerprint with the one in an anonymisation report (the
definition is in docs/policy.md).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pseudogate.core.policy import load_policy

__all__ = ["register"]


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "policy", help="validate policy files", description=__doc__
    )
    actions = p.add_subparsers(dest="policy_command", required=True, metavar="ACTION")
    check = actions.add_parser("check", help="validate a policy and print its fingerprint")
    check.add_argument("file", type=Path, help="policy YAML file")
    check.set_defaults(handler=run_check)


def run_check(args: argparse.Namespace) -> int:
    policy = load_policy(args.file)
    print(f"policy {policy.name!r} is valid")
    for rule in policy.columns:
        detail = ""
        if rule.kind is not None:
            detail = f" (kind {rule.kind.value}, domain {rule.domain})"
        elif rule.hierarchy is not None:
            detail = f" (hierarchy {rule.hierarchy.type.value})"
        elif rule.sensitive:
            detail = " (sensitive)"
        elif rule.field is not None:
            detail = f" (field {rule.field.value})"
        print(f"  {rule.name}: {rule.action.value}{detail}")
    if policy.privacy is not None:
        pv = policy.privacy
        frac = pv.suppression_fraction
        print(f"  privacy: k={pv.k}, l={pv.l}, suppression_limit={frac.numerator}/"
              f"{frac.denominator}, metric={pv.metric}")
    print(f"fingerprint: {policy.fingerprint}")
    return 0
