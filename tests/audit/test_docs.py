"""The auditor's guide's stand-alone verifier works on a real export (the docs stay true)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pseudogate.audit import AuditLog
from pseudogate.core.keyring import Signer

from .conftest import StepClock, sample_event

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "auditors.md"


def _script() -> str:
    blocks = re.findall(r"```python\n(.*?)```", GUIDE.read_text(encoding="utf-8"), re.DOTALL)
    (script,) = [b for b in blocks if "verify_audit.py" in b]
    return script


def _run(tmp_path: Path, lines: list[str], key: Path) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "verify_audit.py"
    script.write_text(_script())
    export = tmp_path / "audit.jsonl"
    export.write_text("\n".join(lines) + "\n")
    return subprocess.run(
        [sys.executable, str(script), str(export), str(key)],
        capture_output=True, text=True, check=False,
    )


@pytest.fixture
def exported(tmp_path: Path, signer: Signer) -> tuple[list[str], Path]:
    key = tmp_path / "pk.pem"
    key.write_text(signer.public_key_pem())
    with AuditLog.open(
        tmp_path / "audit.sqlite3", signer=signer, clock=StepClock(), checkpoint_every=3,
        checkpoint_seconds=0,
    ) as log:
        for n in range(8):
            log.append(sample_event(n))
        return [json.dumps(r, ensure_ascii=False) for r in log.records()], key


def test_when_the_guides_script_checks_a_genuine_export_then_it_says_ok(
    tmp_path: Path, exported: tuple[list[str], Path]
) -> None:
    lines, key = exported
    result = _run(tmp_path, lines, key)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "OK: 8 events"


def test_when_the_guides_script_checks_an_edited_export_then_it_names_the_seq(
    tmp_path: Path, exported: tuple[list[str], Path]
) -> None:
    lines, key = exported
    record = json.loads(lines[4])
    assert record["seq"] == 4 and "signature" not in record
    record["status"] = "INTERNAL"
    lines[4] = json.dumps(record)
    result = _run(tmp_path, lines, key)
    assert result.returncode != 0
    assert "first bad sequence number 4" in result.stderr


def test_when_details_entries_are_listed_then_audit_md_documents_each_one() -> None:
    from pseudogate.audit.events import DETAIL_NAMES

    text = (GUIDE.parent / "audit.md").read_text(encoding="utf-8")
    section = text.split("### Details", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `([a-z0-9_]+)`(?:, `([a-z0-9_]+)`)?", section, re.MULTILINE))
    names = {n for pair in documented for n in pair if n}
    assert names == set(DETAIL_NAMES)
