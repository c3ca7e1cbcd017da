"""Shared helpers for the anonymity tests."""

from __future__ import annotations

from pathlib import Path

import pytest

ADULT = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "adult"
ADULT_QIS = ("age", "education", "marital-status", "native-country", "race", "salary-class",
             "sex", "workclass")


def adult_policy_text(*, k: int, limit: str, metric: str) -> str:
    """A policy over Adult with ARX's QI order and hierarchy files."""
    lines = ["version: 1", f"name: adult-k{k}", "columns:"]
    for qi in ADULT_QIS:
        lines.append(f"  {qi}: {{action: generalise, hierarchy: {{type: tree, "
                     f"file: adult_hierarchy_{qi}.csv}}}}")
    lines.append("  occupation: {action: keep}")
    lines.append(f"privacy: {{k: {k}, suppression_limit: {limit}, metric: {metric}}}")
    return "\n".join(lines) + "\n"


@pytest.fixture
def adult_dir() -> Path:
    if not (ADULT / "adult.csv").is_file():
        pytest.skip("shared Adult data set is absent")
    return ADULT
