"""The key store: keys with ids, purposes and statuses, one primary per purpose.

Key bytes never leave a :class:`Keyring`: it hands out primitives (a :class:`Tokeniser`, a
:class:`Signer`) and metadata (:class:`KeyInfo`), never material. The keyring file format is
the contract in docs/keys.md::

    {"version": 1, "keys": [{"id", "purpose", "status", "created", "material" | "material_wrapped"}]}

``material`` is 32 random bytes in standard base64; ``material_wrapped`` the same bytes sealed
with AES-256-GCM under the master key named by ``PSEUDOGATE_MASTER_KEY_FILE``.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import enum
import hashlib
import json
import os
import secrets
import stat
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from pseudogate.core.clock import Clock, rfc3339, utc_now
from pseudogate.core.encoding import INFO_PREFIX as ENCODING_INFO_PREFIX
from pseudogate.core.encoding import Encoder, derive_encoder
from pseudogate.core.errors import ConfigurationError, FailedPrecondition, NotFound
from pseudogate.core.names import KEY_ID_PATTERN, KEY_ID_RE
from pseudogate.core.tokens import (
    DOMAIN_INFO_PREFIX,
    PROJECT_INFO_PREFIX,
    ShippedKey,
    Tokeniser,
    derive_key,
)

__all__ = [
    "CLUSTER_INFO",
    "EXAMPLE_KEYRING",
    "MASTER_KEY_ENV",
    "KeyInfo",
    "KeyStatus",
    "Keyring",
    "Purpose",
    "Signer",
    "generate_master_key_file",
    "load_master_key",
]

MASTER_KEY_ENV = "PSEUDOGATE_MASTER_KEY_FILE"
#: HKDF info of the cluster-token key (docs/linkage.md, "Representative tokens").
CLUSTER_INFO = ENCODING_INFO_PREFIX + "cluster"
KEY_BYTES = 32
_WRAP_AAD_PREFIX = b"pseudogate/v1/keywrap/"
_FINGERPRINT_PREFIX = b"pseudogate/v1/key-fingerprint/"
_ENTRY_FIELDS = frozenset({"id", "purpose", "status", "created", "material", "material_wrapped"})

#: The example keyring shipped inside the package (identical to keys_example/keyring.json).
EXAMPLE_KEYRING = Path(__file__).parent.parent / "data" / "example_keyring.json"


class Purpose(enum.StrEnum):
    LINKAGE = "linkage"  # linkage tokens for providers' identifiers
    PROJECT = "project"  # per-project re-keying of linkage tokens
    SIGNING = "signing"  # Ed25519 seed for manifests and audit checkpoints


class KeyStatus(enum.StrEnum):
    PRIMARY = "primary"  # used for new outputs
    ACTIVE = "active"  # usable (e.g. for recorded project keys), not used for new outputs
    DISABLED = "disabled"  # kept for the record, unusable


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """Metadata about one key; safe to log and print."""

    id: str
    purpose: Purpose
    status: KeyStatus
    created: str
    fingerprint: str  # first 16 hex of SHA-256 over a prefix and the material: reveals nothing
    wrapped: bool


class _Material:
    """Key bytes. No getters that leak by accident: repr hides them, pickling refuses."""

    __slots__ = ("_b",)

    def __init__(self, raw: bytes) -> None:
        self._b = raw

    def __repr__(self) -> str:
        return "<key material>"

    def __reduce__(self) -> NoReturn:
        raise TypeError("key material cannot be pickled")


class Signer:
    """Ed25519 signing with the gateway's signing key."""

    __slots__ = ("_key", "key_id")

    def __init__(self, *, key_id: str, seed: bytes) -> None:
        self.key_id = key_id
        self._key = Ed25519PrivateKey.from_private_bytes(seed)

    def __repr__(self) -> str:
        return f"Signer(key_id={self.key_id!r})"

    def __reduce__(self) -> NoReturn:
        raise TypeError("Signer holds key material and cannot be pickled")

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data)

    def public_key_pem(self) -> str:
        """The public key as PEM SubjectPublicKeyInfo."""
        return (
            self._key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode("ascii")
        )

    def public_key_raw(self) -> bytes:
        return self._key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )


def _fingerprint(raw: bytes) -> str:
    return hashlib.sha256(_FINGERPRINT_PREFIX + raw).hexdigest()[:16]


def load_master_key(path: str | os.PathLike[str] | None = None) -> bytes:
    """Read the 32-byte master key (base64 text) from ``path`` or ``$PSEUDOGATE_MASTER_KEY_FILE``."""
    name = path if path is not None else os.environ.get(MASTER_KEY_ENV)
    if not name:
        raise ConfigurationError(
            f"keyring has wrapped keys but no master key: set {MASTER_KEY_ENV} to the master key file"
        )
    p = Path(name)
    try:
        mode = p.stat().st_mode
        text = p.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"cannot read master key file {p}: {exc.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigurationError(
            f"master key file {p} is accessible by group or others; run: chmod 600 {p}"
        )
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except binascii.Error:
        raise ConfigurationError(f"master key file {p} is not base64") from None
    if len(key) != KEY_BYTES:
        raise ConfigurationError(f"master key in {p} must be {KEY_BYTES} bytes, not {len(key)}")
    return key


def generate_master_key_file(path: str | os.PathLike[str]) -> None:
    """Create a new master key file (mode 0600); refuses to overwrite."""
    p = Path(path)
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(base64.b64encode(secrets.token_bytes(KEY_BYTES)) + b"\n")


def _wrap(master: bytes, key_id: str, purpose: str, raw: bytes) -> str:
    nonce = secrets.token_bytes(12)
    aad = _WRAP_AAD_PREFIX + f"{key_id}/{purpose}".encode()
    return base64.b64encode(nonce + AESGCM(master).encrypt(nonce, raw, aad)).decode("ascii")


def _unwrap(master: bytes, key_id: str, purpose: str, sealed: str) -> bytes:
    try:
        blob = base64.b64decode(sealed, validate=True)
        aad = _WRAP_AAD_PREFIX + f"{key_id}/{purpose}".encode()
        return AESGCM(master).decrypt(blob[:12], blob[12:], aad)
    except (binascii.Error, InvalidTag, ValueError):
        raise ConfigurationError(
            f"key {key_id!r}: material_wrapped does not open under the master key "
            "(wrong master key or damaged keyring)"
        ) from None


@dataclass(slots=True)
class _Key:
    info: KeyInfo
    material: _Material
    sealed: str | None  # the stored material_wrapped text, kept to re-save unchanged


def _new_id(purpose: Purpose, taken: set[str]) -> str:
    prefix = {Purpose.LINKAGE: "lk", Purpose.PROJECT: "pk", Purpose.SIGNING: "sk"}[purpose]
    while True:
        candidate = f"{prefix}-{secrets.token_hex(4)}"
        if candidate not in taken:
            return candidate


class Keyring:
    """Validated keys; loaded from a keyring file, or generated."""

    __slots__ = ("_keys", "_master", "is_example", "source")

    def __init__(
        self,
        keys: list[_Key],
        *,
        source: Path | None = None,
        is_example: bool = False,
        master: bytes | None = None,
    ) -> None:
        self._keys = keys
        self.source = source
        self.is_example = is_example
        self._master = _Material(master) if master is not None else None
        self._validate()

    def __repr__(self) -> str:
        return f"Keyring(source={str(self.source)!r}, keys={[k.info.id for k in self._keys]})"

    def __reduce__(self) -> NoReturn:
        raise TypeError("Keyring holds key material and cannot be pickled")

    # -- loading and saving ---------------------------------------------------------------

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], *, master_key_file: str | os.PathLike[str] | None = None
    ) -> Keyring:
        """Load and validate a keyring file; refuses unsafe permissions and malformed content.

        A keyring readable or writable by group or others is refused before it is parsed,
        except the published examples (a folder named ``keys_example``, or the packaged copy).
        """
        p = Path(path)
        try:
            mode = p.stat().st_mode
            text = p.read_bytes()
        except FileNotFoundError:
            raise ConfigurationError(f"keyring {p} does not exist") from None
        except OSError as exc:
            raise ConfigurationError(f"cannot read keyring {p}: {exc.strerror}") from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO) and not _is_published_example_path(p):
            raise ConfigurationError(
                f"keyring {p} is readable or writable by group or others "
                f"(mode {stat.S_IMODE(mode):04o}); run: chmod 600 {p}"
            )
        try:
            data = json.loads(text.decode("utf-8"))
        except UnicodeDecodeError:
            raise ConfigurationError(f"keyring {p} is not valid JSON: not UTF-8") from None
        except json.JSONDecodeError as exc:
            raise ConfigurationError(
                f"keyring {p} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
            ) from None
        return cls.from_document(data, source=p, master_key_file=master_key_file)

    @classmethod
    def from_document(
        cls,
        data: Any,
        *,
        source: Path | None = None,
        master_key_file: str | os.PathLike[str] | None = None,
    ) -> Keyring:
        """Validate a parsed keyring document; the master key is read only if a key is wrapped."""
        where = f"keyring {source}" if source else "keyring"
        if not isinstance(data, dict):
            raise ConfigurationError(f"{where}: top level must be a JSON object")
        if data.get("version") != 1:
            raise ConfigurationError(f"{where}: 'version' must be 1")
        entries = data.get("keys")
        if not isinstance(entries, list) or not entries:
            raise ConfigurationError(f"{where}: 'keys' must be a non-empty list")
        master: bytes | None = None

        def master_key() -> bytes:
            nonlocal master
            if master is None:
                master = load_master_key(master_key_file)
            return master

        keys = [cls._parse_entry(entry, n, where, master_key) for n, entry in enumerate(entries)]
        is_example = data.get("example") is True or any(
            k.info.fingerprint in _example_fingerprints() for k in keys
        )
        return cls(keys, source=source, is_example=is_example, master=master)

    @staticmethod
    def _parse_entry(entry: Any, n: int, where: str, master_key: Callable[[], bytes]) -> _Key:
        at = f"{where}: keys[{n}]"
        if not isinstance(entry, dict):
            raise ConfigurationError(f"{at} must be an object")
        unknown = sorted(set(entry) - _ENTRY_FIELDS)
        if unknown:
            raise ConfigurationError(
                f"{at}: unknown field(s) {', '.join(map(repr, unknown))}; "
                f"allowed: {', '.join(sorted(_ENTRY_FIELDS))}"
            )
        key_id = entry.get("id")
        if not isinstance(key_id, str) or not KEY_ID_RE.fullmatch(key_id):
            raise ConfigurationError(f"{at}: 'id' must match {KEY_ID_PATTERN}")
        at = f"{where}: key {key_id!r}"
        try:
            purpose = Purpose(entry.get("purpose", ""))  # "" (absent) is no purpose either
        except ValueError:
            raise ConfigurationError(
                f"{at}: 'purpose' must be one of {', '.join(p.value for p in Purpose)}"
            ) from None
        try:
            status = KeyStatus(entry.get("status", ""))  # "" (absent) is no status either
        except ValueError:
            raise ConfigurationError(
                f"{at}: 'status' must be one of {', '.join(s.value for s in KeyStatus)}"
            ) from None
        created = entry.get("created")
        if not isinstance(created, str) or not _is_timestamp(created):
            raise ConfigurationError(
                f"{at}: 'created' must be an ISO 8601 timestamp such as 2026-01-31T09:00:00Z"
            )
        has_plain, has_wrapped = "material" in entry, "material_wrapped" in entry
        if has_plain == has_wrapped:
            raise ConfigurationError(
                f"{at}: exactly one of 'material' or 'material_wrapped' is required"
            )
        sealed: str | None = None
        if has_plain:
            try:
                raw = base64.b64decode(entry["material"], validate=True)
            except (binascii.Error, TypeError, ValueError):
                raise ConfigurationError(f"{at}: 'material' is not standard base64") from None
        else:
            sealed = entry["material_wrapped"]
            if not isinstance(sealed, str):
                raise ConfigurationError(f"{at}: 'material_wrapped' must be a string")
            raw = _unwrap(master_key(), key_id, purpose.value, sealed)
        if len(raw) != KEY_BYTES:
            raise ConfigurationError(
                f"{at}: material must be {KEY_BYTES} bytes, not {len(raw)} "
                "(32 random bytes in standard base64: 44 characters ending in '=')"
            )
        info = KeyInfo(key_id, purpose, status, created, _fingerprint(raw), has_wrapped)
        return _Key(info, _Material(raw), sealed)

    def _validate(self) -> None:
        seen: set[str] = set()
        for k in self._keys:
            if k.info.id in seen:
                raise ConfigurationError(f"keyring: key id {k.info.id!r} appears twice")
            seen.add(k.info.id)
        for purpose in Purpose:
            primaries = [
                k.info.id
                for k in self._keys
                if k.info.purpose is purpose and k.info.status is KeyStatus.PRIMARY
            ]
            if len(primaries) > 1:
                raise ConfigurationError(
                    f"keyring: purpose {purpose.value!r} has {len(primaries)} primary keys "
                    f"({', '.join(primaries)}); exactly one is allowed"
                )
            if not primaries and any(k.info.purpose is purpose for k in self._keys):
                raise ConfigurationError(f"keyring: purpose {purpose.value!r} has no primary key")

    def require_purposes(self, *purposes: Purpose) -> None:
        """Refuse a keyring lacking a primary key for any of ``purposes``."""
        for purpose in purposes:
            if not any(
                k.info.purpose is purpose and k.info.status is KeyStatus.PRIMARY for k in self._keys
            ):
                raise ConfigurationError(f"keyring has no primary key of purpose {purpose.value!r}")

    def to_document(self) -> dict[str, Any]:
        """The keyring file content (cleartext material only where it was cleartext)."""
        entries: list[dict[str, Any]] = []
        for k in self._keys:
            e: dict[str, Any] = {
                "id": k.info.id,
                "purpose": k.info.purpose.value,
                "status": k.info.status.value,
                "created": k.info.created,
            }
            if k.info.wrapped:
                e["material_wrapped"] = k.sealed
            else:
                e["material"] = base64.b64encode(k.material._b).decode("ascii")
            entries.append(e)
        doc: dict[str, Any] = {"version": 1, "keys": entries}
        if self.is_example:
            doc = {"example": True, **doc}
        return doc

    def save(self, path: str | os.PathLike[str], *, overwrite: bool = True) -> None:
        """Write atomically with mode 0600 (temporary file in the same folder, then rename)."""
        p = Path(path)
        if not overwrite and p.exists():
            raise ConfigurationError(f"{p} already exists; refusing to overwrite a keyring")
        text = json.dumps(self.to_document(), indent=2) + "\n"
        fd, tmp = tempfile.mkstemp(prefix=".keyring-", dir=p.parent or Path("."))
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, p)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self.source = p

    @classmethod
    def generate(cls, *, wrap_under: bytes | None = None, clock: Clock = utc_now) -> Keyring:
        """A new keyring with one primary key for every purpose (``created`` by ``clock``)."""
        ring = cls([], master=wrap_under)
        for purpose in Purpose:
            ring.add(purpose, primary=True, clock=clock)
        return ring

    # -- metadata -------------------------------------------------------------------------

    def infos(self) -> list[KeyInfo]:
        return [k.info for k in self._keys]

    def info(self, key_id: str) -> KeyInfo:
        return self._get(key_id).info

    def primary(self, purpose: Purpose) -> KeyInfo:
        for k in self._keys:
            if k.info.purpose is purpose and k.info.status is KeyStatus.PRIMARY:
                return k.info
        raise FailedPrecondition(f"keyring has no primary key of purpose {purpose.value!r}")

    @property
    def has_cleartext(self) -> bool:
        return any(not k.info.wrapped for k in self._keys)

    def _get(self, key_id: str) -> _Key:
        for k in self._keys:
            if k.info.id == key_id:
                return k
        raise NotFound(f"no key with id {key_id!r} in the keyring")

    def _usable(self, key_id: str, purpose: Purpose) -> _Key:
        k = self._get(key_id)
        if k.info.purpose is not purpose:
            raise FailedPrecondition(f"key {key_id!r} is not a {purpose.value} key")
        if k.info.status is KeyStatus.DISABLED:
            raise FailedPrecondition(f"key {key_id!r} is disabled")
        return k

    # -- primitives -----------------------------------------------------------------------

    def linkage_tokeniser(self, domain: str, *, key_id: str | None = None) -> Tokeniser:
        """Tokeniser for a domain under the primary linkage key (or a named usable one)."""
        k = self._usable(key_id or self.primary(Purpose.LINKAGE).id, Purpose.LINKAGE)
        return Tokeniser(
            key_id=k.info.id,
            label=f"domain/{domain}",
            derived_key=derive_key(k.material._b, DOMAIN_INFO_PREFIX + domain),
        )

    def linkage_key_to_ship(self, domain: str, *, key_id: str | None = None) -> ShippedKey:
        """The derived key of :meth:`linkage_tokeniser` packed for a batch worker (one job).

        The one way a key leaves this process: derived for one domain (HKDF is one-way, so
        neither the linkage key nor another domain's key can be recovered from it), and sent
        only to the workers of one job (docs/keys.md, "Keys on a Dask cluster").
        """
        k = self._usable(key_id or self.primary(Purpose.LINKAGE).id, Purpose.LINKAGE)
        return ShippedKey(
            key_id=k.info.id,
            label=f"domain/{domain}",
            derived_key=derive_key(k.material._b, DOMAIN_INFO_PREFIX + domain),
        )

    def linkage_encoder(self, *, key_id: str | None = None) -> Encoder:
        """Encoder of identity fields (docs/linkage.md) under the primary linkage key (or a
        named usable one): its sub-keys are derived from the key, whose bytes stay here."""
        k = self._usable(key_id or self.primary(Purpose.LINKAGE).id, Purpose.LINKAGE)
        return derive_encoder(key_id=k.info.id, material=k.material._b)

    def linkage_cluster_tokeniser(self, *, key_id: str | None = None) -> Tokeniser:
        """Tokeniser of the cluster tokens that name a probabilistic project's clusters without
        an NHS number (docs/linkage.md, "Representative tokens"), under the primary linkage key
        (or a named usable one); formatted like linkage tokens, the key stays here."""
        k = self._usable(key_id or self.primary(Purpose.LINKAGE).id, Purpose.LINKAGE)
        return Tokeniser(
            key_id=k.info.id,
            label="encoding/cluster",
            derived_key=derive_key(k.material._b, CLUSTER_INFO),
        )

    def project_tokeniser(self, project_id: str, *, key_id: str | None = None) -> Tokeniser:
        """Tokeniser re-keying linkage tokens for one project (the key recorded for it)."""
        k = self._usable(key_id or self.primary(Purpose.PROJECT).id, Purpose.PROJECT)
        return Tokeniser(
            key_id=k.info.id,
            label=f"project/{project_id}",
            derived_key=derive_key(k.material._b, PROJECT_INFO_PREFIX + project_id),
        )

    def project_key_to_ship(self, project_id: str, *, key_id: str | None = None) -> ShippedKey:
        """The derived key of :meth:`project_tokeniser` packed for the workers of one extract
        (``serve --dask-scheduler``): it makes that project's tokens and nothing else."""
        k = self._usable(key_id or self.primary(Purpose.PROJECT).id, Purpose.PROJECT)
        return ShippedKey(
            key_id=k.info.id,
            label=f"project/{project_id}",
            derived_key=derive_key(k.material._b, PROJECT_INFO_PREFIX + project_id),
        )

    def public_signing_keys(self) -> list[tuple[KeyInfo, str]]:
        """Every signing key's metadata and public key (PEM), the primary first.

        Public halves only, disabled keys included: checkpoints and manifests signed before a
        rotation must stay verifiable.
        """
        keys = [k for k in self._keys if k.info.purpose is Purpose.SIGNING]
        keys.sort(key=lambda k: k.info.status is not KeyStatus.PRIMARY)  # stable: primary first
        return [(k.info, Signer(key_id=k.info.id, seed=k.material._b).public_key_pem()) for k in keys]

    def signer(self, *, key_id: str | None = None) -> Signer:
        k = self._usable(key_id or self.primary(Purpose.SIGNING).id, Purpose.SIGNING)
        return Signer(key_id=k.info.id, seed=k.material._b)

    # -- staged rotation: add -> roll out -> promote -> disable --------------------------------

    def add(
        self,
        purpose: Purpose,
        *,
        primary: bool = False,
        key_id: str | None = None,
        clock: Clock = utc_now,
    ) -> KeyInfo:
        """Add a new random key (active, or primary in an empty purpose); its ``created`` time
        is ``clock``'s, in whole seconds."""
        taken = {k.info.id for k in self._keys}
        new_id = key_id or _new_id(purpose, taken)
        if not KEY_ID_RE.fullmatch(new_id) or new_id in taken:
            raise ConfigurationError(f"key id {new_id!r} is invalid or already used")
        has_primary = any(
            k.info.purpose is purpose and k.info.status is KeyStatus.PRIMARY for k in self._keys
        )
        status = KeyStatus.PRIMARY if (primary or not has_primary) else KeyStatus.ACTIVE
        if status is KeyStatus.PRIMARY and has_primary:
            raise ConfigurationError(
                f"purpose {purpose.value!r} already has a primary key; add then promote instead"
            )
        raw = secrets.token_bytes(KEY_BYTES)
        sealed = None
        if self._master is not None:
            sealed = _wrap(self._master._b, new_id, purpose.value, raw)
        created = rfc3339(clock(), precision="seconds")
        info = KeyInfo(new_id, purpose, status, created, _fingerprint(raw), sealed is not None)
        self._keys.append(_Key(info, _Material(raw), sealed))
        self.is_example = False
        return info

    def promote(self, key_id: str) -> KeyInfo:
        """Make an active key the primary of its purpose; the old primary becomes active."""
        k = self._get(key_id)
        if k.info.status is KeyStatus.DISABLED:
            raise FailedPrecondition(f"key {key_id!r} is disabled and cannot be promoted")
        for other in self._keys:
            if other.info.purpose is k.info.purpose and other.info.status is KeyStatus.PRIMARY:
                other.info = _with_status(other.info, KeyStatus.ACTIVE)
        k.info = _with_status(k.info, KeyStatus.PRIMARY)
        return k.info

    def disable(self, key_id: str) -> KeyInfo:
        """Disable a non-primary key (promote another key first)."""
        k = self._get(key_id)
        if k.info.status is KeyStatus.PRIMARY:
            raise FailedPrecondition(
                f"key {key_id!r} is the primary {k.info.purpose.value} key; "
                "promote another key first"
            )
        k.info = _with_status(k.info, KeyStatus.DISABLED)
        return k.info

    def enable_wrapping(self, master: bytes) -> None:
        """Use ``master`` to wrap keys added from now on."""
        self._master = _Material(master)


def _is_timestamp(text: str) -> bool:
    try:
        dt.datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


def _is_published_example_path(path: Path) -> bool:
    """The published example keyrings: exempt from the permission check (their keys are public)."""
    resolved = path.resolve()
    return resolved.parent.name == "keys_example" or resolved == EXAMPLE_KEYRING.resolve()


def _with_status(info: KeyInfo, status: KeyStatus) -> KeyInfo:
    return KeyInfo(info.id, info.purpose, status, info.created, info.fingerprint, info.wrapped)


_EXAMPLE_FPS: frozenset[str] | None = None


def _example_fingerprints() -> frozenset[str]:
    """Fingerprints of the published example keys: recognised even if the flag is removed."""
    global _EXAMPLE_FPS
    if _EXAMPLE_FPS is None:
        try:
            doc: Mapping[str, Any] = json.loads(EXAMPLE_KEYRING.read_text(encoding="utf-8"))
            _EXAMPLE_FPS = frozenset(
                _fingerprint(base64.b64decode(e["material"])) for e in doc["keys"]
            )
        except (OSError, ValueError, KeyError):
            _EXAMPLE_FPS = frozenset()
    return _EXAMPLE_FPS
