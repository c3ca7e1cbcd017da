"""The policy folder: YAML files by stem, each an ingestion policy, fail closed."""

from __future__ import annotations

from pathlib import Path

import pytest

from pseudogate.core.errors import ConfigurationError
from pseudogate.gateway import load_policy_registry

from .helpers import COUNCIL_POLICY, GP_POLICY


def test_when_folder_holds_policies_then_they_are_registered_by_stem(tmp_path: Path) -> None:
    (tmp_path / "gp.yaml").write_text(GP_POLICY)
    (tmp_path / "council.yml").write_text(COUNCIL_POLICY)
    (tmp_path / "README.md").write_text("not a policy")
    registry = load_policy_registry(tmp_path)
    assert sorted(registry) == ["council", "gp"]
    assert registry["gp"].name == "gp-ingest"


def test_when_a_policy_generalises_then_the_error_names_file_and_column(tmp_path: Path) -> None:
    (tmp_path / "gp.yaml").write_text(GP_POLICY)
    bad = GP_POLICY.replace("sex:           {action: keep}",
                            "sex:           {action: generalise, hierarchy: {type: suppress}}")
    (tmp_path / "bad.yaml").write_text(bad)
    with pytest.raises(ConfigurationError, match=r"bad\.yaml.*'sex'"):
        load_policy_registry(tmp_path)


def test_when_a_policy_is_malformed_then_the_error_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "broken.yaml").write_text(GP_POLICY.replace("action: drop", "action: shred", 1))
    with pytest.raises(ConfigurationError, match=r"broken\.yaml line 5.*'shred'"):
        load_policy_registry(tmp_path)


@pytest.mark.parametrize("setup", ["missing", "two stems"])
def test_when_folder_is_unusable_then_configuration_error(tmp_path: Path, setup: str) -> None:
    folder = tmp_path / "policies"
    if setup != "missing":
        folder.mkdir()
    if setup == "two stems":
        (folder / "gp.yaml").write_text(GP_POLICY)
        (folder / "gp.yml").write_text(GP_POLICY)
    with pytest.raises(ConfigurationError, match="policies folder"):
        load_policy_registry(folder)


def test_when_folder_is_empty_then_no_policy_is_registered_and_a_warning_is_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "policies"
    folder.mkdir()
    assert load_policy_registry(folder) == {}
    assert "holds no .yaml policy files" in caplog.text
