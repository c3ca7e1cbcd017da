"""The key store: validation messages, file permissions, wrapping, rotation, no leaks."""

from __future__ import annotations

import base64
import copy
import json
import os
import pickle
import shutil
from pathlib import Path
from typing import Any

import pytest

from pseudogate.core.errors import ConfigurationError, FailedPrecondition, NotFound
from pseudogate.core.keyring import (
    EXAMPLE_KEYRING,
    MASTER_KEY_ENV,
    Keyring,
    KeyStatus,
    Purpose,
    generate_master_key_file,
)

ROOT = Path(__file__).resolve().parents[2]
K1 = base64.b64encode(bytes(range(32))).decode()
K2 = base64.b64encode(bytes(range(32, 64))).decode()
K3 = base64.b64encode(bytes(range(64, 96))).decode()


def entry(key_id: str, purpose: str = "linkage", status: str = "primary", **extra: Any) -> dict:
    e: dict[str, Any] = {
        "id": key_id,
        "purpose": purpose,
        "status": status,
        "created": "2026-01-31T09:00:00Z",
    }
    if "material_wrapped" not in extra:
        e["material"] = K1
    e.update(extra)
    return e


def write(path: Path, doc: Any, *, mode: int = 0o600) -> Path:
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc), encoding="utf-8")
    os.chmod(path, mode)
    return path


def good_doc() -> dict[str, Any]:
    return {
        "version": 1,
        "keys": [
            entry("lk-1", material=K1),
            entry("pk-1", "project", material=K2),
            entry("sk-1", "signing", material=K3),
        ],
    }


def refused(tmp_path: Path, doc: Any) -> str:
    path = write(tmp_path / "ring.json", doc)
    with pytest.raises(ConfigurationError) as info:
        Keyring.load(path)
    return str(info.value)


def test_when_keyring_is_well_formed_then_it_loads(tmp_path: Path) -> None:
    ring = Keyring.load(write(tmp_path / "ring.json", good_doc()))
    assert [(i.id, i.purpose, i.status) for i in ring.infos()] == [
        ("lk-1", Purpose.LINKAGE, KeyStatus.PRIMARY),
        ("pk-1", Purpose.PROJECT, KeyStatus.PRIMARY),
        ("sk-1", Purpose.SIGNING, KeyStatus.PRIMARY),
    ]
    assert not ring.is_example
    assert ring.linkage_tokeniser("person").key_id == "lk-1"


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ("{not json", "is not valid JSON"),
        ([], "top level must be a JSON object"),
        ({"version": 2, "keys": [entry("a")]}, "'version' must be 1"),
        ({"version": 1, "keys": []}, "'keys' must be a non-empty list"),
        ({"version": 1, "keys": ["x"]}, "keys[0] must be an object"),
        ({"version": 1, "keys": [entry("Bad_Id")]}, "'id' must match [a-z0-9-]{1,16}"),
        ({"version": 1, "keys": [entry("a" * 17)]}, "'id' must match"),
        ({"version": 1, "keys": [entry("a", "hashing")]}, "'purpose' must be one of linkage"),
        ({"version": 1, "keys": [entry("a", status="live")]}, "'status' must be one of primary"),
        ({"version": 1, "keys": [entry("a", created="yesterday")]}, "'created' must be an ISO"),
        ({"version": 1, "keys": [entry("a", material_wrapped="x", material=K1)]}, "exactly one"),
        ({"version": 1, "keys": [{**entry("a"), "material": None} | {}]}, "not standard base64"),
        ({"version": 1, "keys": [entry("a", secret="x")]}, "unknown field(s) 'secret'"),
        ({"version": 1, "keys": [entry("a"), entry("a", "project")]}, "'a' appears twice"),
    ],
)
def test_when_keyring_is_malformed_then_message_says_what(
    tmp_path: Path, doc: Any, message: str
) -> None:
    assert message in refused(tmp_path, doc)


def test_when_neither_material_nor_wrapped_then_refused(tmp_path: Path) -> None:
    e = entry("a")
    del e["material"]
    assert "exactly one of 'material' or 'material_wrapped'" in refused(
        tmp_path, {"version": 1, "keys": [e]}
    )


def test_when_purpose_has_no_primary_then_refused(tmp_path: Path) -> None:
    doc = {"version": 1, "keys": [entry("a", status="active"), entry("b", status="disabled")]}
    assert "purpose 'linkage' has no primary key" in refused(tmp_path, doc)


def test_when_purpose_has_two_primaries_then_refused(tmp_path: Path) -> None:
    doc = {"version": 1, "keys": [entry("a"), entry("b", material=K2)]}
    message = refused(tmp_path, doc)
    assert "purpose 'linkage' has 2 primary keys (a, b); exactly one is allowed" in message


@pytest.mark.parametrize("material", ["not base64!", K1.replace("+", "-").replace("/", "_")[:-1]])
def test_when_material_is_not_standard_base64_then_refused(tmp_path: Path, material: str) -> None:
    message = refused(tmp_path, {"version": 1, "keys": [entry("a", material=material)]})
    assert "key 'a': 'material' is not standard base64" in message
    assert material not in message


def test_when_material_has_wrong_length_then_refused(tmp_path: Path) -> None:
    short = base64.b64encode(bytes(16)).decode()
    message = refused(tmp_path, {"version": 1, "keys": [entry("a", material=short)]})
    assert "key 'a': material must be 32 bytes, not 16" in message
    assert short not in message


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620])
def test_when_keyring_is_open_to_group_or_others_then_refused(tmp_path: Path, mode: int) -> None:
    path = write(tmp_path / "ring.json", good_doc(), mode=mode)
    with pytest.raises(ConfigurationError) as info:
        Keyring.load(path)
    assert f"is readable or writable by group or others (mode {mode:04o})" in str(info.value)
    assert f"chmod 600 {path}" in str(info.value)


def test_when_example_keyring_is_copied_elsewhere_then_permissions_are_checked(
    tmp_path: Path,
) -> None:
    copied = tmp_path / "keyring.json"
    shutil.copy(ROOT / "keys_example" / "keyring.json", copied)
    os.chmod(copied, 0o644)
    with pytest.raises(ConfigurationError, match="readable or writable by group or others"):
        Keyring.load(copied)


def test_when_keyring_is_in_keys_example_then_open_permissions_are_accepted(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "keys_example"
    folder.mkdir()
    ring = Keyring.load(write(folder / "keyring.json", good_doc(), mode=0o644))
    assert len(ring.infos()) == 3


def test_shipped_example_keyrings_load_and_are_flagged() -> None:
    for path in (ROOT / "keys_example" / "keyring.json", EXAMPLE_KEYRING):
        ring = Keyring.load(path)
        assert ring.is_example
        assert {i.purpose for i in ring.infos() if i.status is KeyStatus.PRIMARY} == set(Purpose)


def test_when_keyring_is_missing_then_message_names_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        Keyring.load(tmp_path / "nope.json")


@pytest.fixture
def master(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "master.key"
    generate_master_key_file(path)
    monkeypatch.setenv(MASTER_KEY_ENV, str(path))
    return path


def test_wrapped_keys_round_trip_under_the_master_key(tmp_path: Path, master: Path) -> None:
    from pseudogate.core.keyring import load_master_key

    ring = Keyring.generate(wrap_under=load_master_key(master))
    ring.save(tmp_path / "ring.json")
    text = (tmp_path / "ring.json").read_text()
    assert '"material"' not in text and text.count('"material_wrapped"') == 3
    assert (tmp_path / "ring.json").stat().st_mode & 0o777 == 0o600
    loaded = Keyring.load(tmp_path / "ring.json")
    assert loaded.infos() == ring.infos()
    assert all(i.wrapped for i in loaded.infos())
    assert loaded.linkage_tokeniser("x").token("v") == ring.linkage_tokeniser("x").token("v")


def test_wrapped_keys_do_not_open_under_a_wrong_master_key(tmp_path: Path, master: Path) -> None:
    from pseudogate.core.keyring import load_master_key

    Keyring.generate(wrap_under=load_master_key(master)).save(tmp_path / "ring.json")
    other = tmp_path / "other.key"
    generate_master_key_file(other)
    with pytest.raises(ConfigurationError, match="does not open under the master key"):
        Keyring.load(tmp_path / "ring.json", master_key_file=other)


def test_wrapped_material_is_bound_to_its_key_id(tmp_path: Path, master: Path) -> None:
    from pseudogate.core.keyring import load_master_key

    Keyring.generate(wrap_under=load_master_key(master)).save(tmp_path / "ring.json")
    doc = json.loads((tmp_path / "ring.json").read_text())
    doc["keys"][0]["id"] = "renamed"
    with pytest.raises(ConfigurationError, match="key 'renamed': material_wrapped does not open"):
        Keyring.load(write(tmp_path / "ring.json", doc))


def test_when_keys_are_wrapped_and_no_master_key_is_set_then_refused(
    tmp_path: Path, master: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pseudogate.core.keyring import load_master_key

    Keyring.generate(wrap_under=load_master_key(master)).save(tmp_path / "ring.json")
    monkeypatch.delenv(MASTER_KEY_ENV)
    with pytest.raises(ConfigurationError, match=f"set {MASTER_KEY_ENV}"):
        Keyring.load(tmp_path / "ring.json")


def test_when_master_key_file_is_open_to_others_then_refused(tmp_path: Path, master: Path) -> None:
    os.chmod(master, 0o644)
    from pseudogate.core.keyring import load_master_key

    with pytest.raises(ConfigurationError, match="accessible by group or others"):
        load_master_key(master)


def test_staged_rotation_add_promote_disable(tmp_path: Path) -> None:
    path = write(tmp_path / "ring.json", good_doc())
    ring = Keyring.load(path)
    before = ring.linkage_tokeniser("person").token("9434765919")
    new = ring.add(Purpose.LINKAGE)
    assert new.status is KeyStatus.ACTIVE and new.id.startswith("lk-")
    assert ring.linkage_tokeniser("person").key_id == "lk-1"  # still the old primary
    ring.promote(new.id)
    assert ring.primary(Purpose.LINKAGE).id == new.id
    assert ring.info("lk-1").status is KeyStatus.ACTIVE
    after = ring.linkage_tokeniser("person").token("9434765919")
    assert after.startswith(new.id + "_") and after != before
    # the old key stays usable by id until it is disabled
    assert ring.linkage_tokeniser("person", key_id="lk-1").token("9434765919") == before
    with pytest.raises(FailedPrecondition, match="promote another key first"):
        ring.disable(new.id)
    ring.disable("lk-1")
    with pytest.raises(FailedPrecondition, match="'lk-1' is disabled"):
        ring.linkage_tokeniser("person", key_id="lk-1")
    with pytest.raises(FailedPrecondition, match="disabled and cannot be promoted"):
        ring.promote("lk-1")
    with pytest.raises(NotFound, match="no key with id 'nope'"):
        ring.promote("nope")
    ring.save(path)
    reloaded = Keyring.load(path)
    assert reloaded.infos() == ring.infos()
    assert reloaded.linkage_tokeniser("person").token("9434765919") == after


def _secrets(ring: Keyring, doc: dict[str, Any]) -> list[str]:
    out = []
    for e in doc["keys"]:
        raw = base64.b64decode(e["material"])
        out += [e["material"], raw.hex(), repr(raw), base64.b32encode(raw).decode()]
    return out


def test_key_objects_refuse_pickling_and_hide_material_in_repr(tmp_path: Path) -> None:
    doc = good_doc()
    ring = Keyring.load(write(tmp_path / "ring.json", doc))
    objects: list[object] = [
        ring,
        ring.linkage_tokeniser("person"),
        ring.project_tokeniser("p1"),
        ring.signer(),
    ]
    for obj in objects:
        with pytest.raises(TypeError, match="cannot be pickled"):
            pickle.dumps(obj)
        with pytest.raises(TypeError):
            copy.deepcopy(obj)
        text = repr(obj) + str(obj)
        assert all(s not in text for s in _secrets(ring, doc)), type(obj).__name__
    infos = repr(ring.infos())
    assert all(s not in infos for s in _secrets(ring, doc))
    assert not [name for name in dir(ring) if "material" in name or name in ("key", "raw")]


def test_wrapped_material_is_nonce_ciphertext_tag_with_the_documented_aad(
    tmp_path: Path, master: Path
) -> None:
    """docs/keys.md: base64(nonce || ciphertext+tag), AES-256-GCM, AAD keywrap/id/purpose."""
    import hashlib

    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from pseudogate.core.keyring import load_master_key

    ring = Keyring.generate(wrap_under=load_master_key(master))
    ring.save(tmp_path / "ring.json")
    master_key = base64.b64decode(master.read_bytes().strip())
    for e, info in zip(
        json.loads((tmp_path / "ring.json").read_text())["keys"], ring.infos(), strict=True
    ):
        blob = base64.b64decode(e["material_wrapped"], validate=True)
        assert len(blob) == 12 + 32 + 16
        aad = f"pseudogate/v1/keywrap/{e['id']}/{e['purpose']}".encode()
        material = AESGCM(master_key).decrypt(blob[:12], blob[12:], aad)
        fingerprint = hashlib.sha256(b"pseudogate/v1/key-fingerprint/" + material).hexdigest()
        assert info.fingerprint == fingerprint[:16]


def test_public_signing_keys_are_every_signing_key_primary_first_and_public_only() -> None:
    ring = Keyring.generate()
    old = ring.primary(Purpose.SIGNING).id
    retired = ring.add(Purpose.SIGNING).id
    ring.disable(retired)
    new = ring.add(Purpose.SIGNING).id
    ring.promote(new)
    published = ring.public_signing_keys()
    assert [(info.id, info.status) for info, _ in published] == [
        (new, KeyStatus.PRIMARY), (old, KeyStatus.ACTIVE), (retired, KeyStatus.DISABLED)
    ]
    assert published[0][1] == ring.signer().public_key_pem()
    assert published[1][1] == ring.signer(key_id=old).public_key_pem()
    for _, pem in published:
        assert pem.startswith("-----BEGIN PUBLIC KEY-----") and "PRIVATE" not in pem
