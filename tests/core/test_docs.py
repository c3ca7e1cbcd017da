"""docs/tokens.md: the auditor's snippet runs and prints the token it promises."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOKENS_MD = ROOT / "docs" / "tokens.md"


def test_auditor_snippet_recomputes_the_documented_token() -> None:
    text = TOKENS_MD.read_text(encoding="utf-8")
    (code,) = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
    (promised,) = re.findall(r"# prints: (\S+)", code)
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert run.stdout.strip() == promised
    vectors = json.loads((ROOT / "docs" / "test-vectors" / "tokens.json").read_text())
    assert any(v["token"] == promised and v["normalised"] == "9434765919" for v in vectors)


def test_construction_in_docs_is_the_issue_text_verbatim() -> None:
    text = TOKENS_MD.read_text(encoding="utf-8")
    for line in (
        'K_d   = HKDF-SHA256(IKM=K, salt=empty, info=UTF-8("pseudogate/v1/domain/" + domain), L=32)',
        "mac   = HMAC-SHA256(K_d, UTF-8(v))",
        'token = key_id + "_" + lowercase(unpadded RFC 4648 base32(mac[0:20]))',
    ):
        assert line in text
