"""``pseudogate keys``: generate, list, add/promote/disable; never prints material."""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path

import pytest

from pseudogate.cli import main
from pseudogate.core.keyring import MASTER_KEY_ENV, Keyring, KeyStatus, Purpose

ROOT = Path(__file__).resolve().parents[2]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def secrets_of(path: Path) -> list[str]:
    doc = json.loads(path.read_text())
    found = []
    for e in doc["keys"]:
        found.append(e.get("material") or e["material_wrapped"])
        if "material" in e:
            found.append(base64.b64decode(e["material"]).hex())
    return found


def test_generate_then_list_shows_metadata_but_no_material(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    ring_path = tmp_path / "ring.json"
    code, out, err = run(capsys, "keys", "generate", "--out", str(ring_path))
    assert code == 0, err
    assert ring_path.stat().st_mode & 0o777 == 0o600
    assert "CLEARTEXT" in err
    code, listed, err = run(capsys, "keys", "list", "--keyring", str(ring_path))
    assert code == 0, err
    infos = Keyring.load(ring_path).infos()
    assert len(infos) == 3
    for info in infos:
        line = next(line for line in listed.splitlines() if line.startswith(info.id))
        for part in (info.purpose.value, "primary", info.created, info.fingerprint, "cleartext"):
            assert part in line
    everything = out + listed + err + caplog.text
    assert all(s not in everything for s in secrets_of(ring_path))


def test_generate_refuses_to_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ring_path = tmp_path / "ring.json"
    ring_path.write_text("keep me")
    code, _, err = run(capsys, "keys", "generate", "--out", str(ring_path))
    assert code == 2
    assert "already exists; refusing to overwrite" in err
    assert ring_path.read_text() == "keep me"


def test_generate_wrap_without_master_key_variable_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(MASTER_KEY_ENV, raising=False)
    code, _, err = run(capsys, "keys", "generate", "--out", str(tmp_path / "r.json"), "--wrap")
    assert code == 2
    assert f"--wrap needs a master key: set {MASTER_KEY_ENV}" in err
    assert not (tmp_path / "r.json").exists()


def test_generate_wrap_creates_the_master_key_file_and_wraps_every_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    master = tmp_path / "secret" / "master.key"
    master.parent.mkdir()
    monkeypatch.setenv(MASTER_KEY_ENV, str(master))
    ring_path = tmp_path / "ring.json"
    code, out, err = run(capsys, "keys", "generate", "--out", str(ring_path), "--wrap")
    assert code == 0, err
    assert f"created master key file {master} (mode 0600)" in out
    assert master.stat().st_mode & 0o777 == 0o600
    doc = json.loads(ring_path.read_text())
    assert all("material_wrapped" in e and "material" not in e for e in doc["keys"])
    assert master.read_text().strip() not in out + err
    # a second keyring reuses the existing master key and says nothing about creating one
    code, out2, _ = run(capsys, "keys", "generate", "--out", str(tmp_path / "r2.json"), "--wrap")
    assert code == 0 and "created master key file" not in out2
    assert all(i.wrapped for i in Keyring.load(tmp_path / "r2.json").infos())


def test_rotation_through_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MASTER_KEY_ENV, str(tmp_path / "master.key"))
    ring_path = tmp_path / "ring.json"
    assert run(capsys, "keys", "generate", "--out", str(ring_path), "--wrap")[0] == 0
    old = Keyring.load(ring_path).primary(Purpose.LINKAGE).id
    code, out, err = run(capsys, "keys", "add", "--keyring", str(ring_path), "--purpose", "linkage")
    assert code == 0, err
    new = Keyring.load(ring_path).infos()[-1]
    assert new.status is KeyStatus.ACTIVE and new.wrapped
    assert f"pseudogate keys promote {new.id}" in out
    code, out, err = run(capsys, "keys", "promote", new.id, "--keyring", str(ring_path))
    assert code == 0, err
    assert f"{new.id} is now the primary linkage key" in out
    code, _, err = run(capsys, "keys", "disable", new.id, "--keyring", str(ring_path))
    assert code == 2 and "promote another key first" in err
    code, out, err = run(capsys, "keys", "disable", old, "--keyring", str(ring_path))
    assert code == 0, err
    statuses = {i.id: i.status for i in Keyring.load(ring_path).infos()}
    assert statuses[new.id] is KeyStatus.PRIMARY and statuses[old] is KeyStatus.DISABLED
    assert ring_path.stat().st_mode & 0o777 == 0o600
    code, _, err = run(capsys, "keys", "promote", "no-such-key", "--keyring", str(ring_path))
    assert code == 1 and "no key with id 'no-such-key'" in err


def test_changing_the_example_keyring_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    example = ROOT / "keys_example" / "keyring.json"
    before = example.read_bytes()
    code, _, err = run(capsys, "keys", "add", "--keyring", str(example), "--purpose", "linkage")
    assert code == 2
    assert "WARNING: running on the EXAMPLE keyring" in err
    assert "refusing to change the EXAMPLE keyring" in err
    assert example.read_bytes() == before


def test_list_of_a_malformed_keyring_says_what_is_wrong(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "ring.json"
    bad.write_text(json.dumps({"version": 1, "keys": [{"id": "UPPER"}]}))
    bad.chmod(0o600)
    code, _, err = run(capsys, "keys", "list", "--keyring", str(bad))
    assert code == 2
    assert "'id' must match [a-z0-9-]{1,16}" in err


def test_generate_wrap_with_master_key_in_a_missing_folder_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MASTER_KEY_ENV, str(tmp_path / "nowhere" / "master.key"))
    code, _, err = run(capsys, "keys", "generate", "--out", str(tmp_path / "r.json"), "--wrap")
    assert code == 2
    assert "cannot create master key file" in err and "No such file or directory" in err
    assert not (tmp_path / "r.json").exists()
