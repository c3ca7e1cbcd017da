"""Generated protobuf code is build output: it must match proto/ exactly, and buf lint passes."""

from __future__ import annotations

import filecmp
import importlib.util
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GENERATED = ROOT / "src" / "pseudogate" / "v1"


def _load_generator() -> object:
    spec = importlib.util.spec_from_file_location("gen_proto", ROOT / "tools" / "gen_proto.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_when_code_is_regenerated_then_it_equals_the_committed_code(tmp_path: Path) -> None:
    _load_generator().generate(tmp_path)  # type: ignore[attr-defined]
    fresh = tmp_path / "pseudogate" / "v1"
    fresh_files = sorted(p.name for p in fresh.iterdir() if p.name.endswith((".py", ".pyi")))
    committed = sorted(
        p.name for p in GENERATED.iterdir() if "_pb2" in p.name and p.suffix in (".py", ".pyi")
    )
    assert fresh_files == committed, "generated files differ from proto/: run `make proto`"
    stale = [n for n in fresh_files if not filecmp.cmp(fresh / n, GENERATED / n, shallow=False)]
    assert stale == [], f"stale generated code (run `make proto`): {stale}"


def _buf() -> str | None:
    local = ROOT / "node_modules" / ".bin" / "buf"
    if local.exists():
        return str(local)
    return shutil.which("buf")


@pytest.mark.skipif(_buf() is None, reason="buf CLI not installed (npm install installs it)")
def test_when_buf_lints_the_protos_then_standard_rules_pass() -> None:
    result = subprocess.run(
        [_buf(), "lint"],
        cwd=ROOT / "proto",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
