"""Extract manifests: the content hash and the Ed25519 signature an auditor can recompute.

Content hash (``content_sha256``): SHA-256 over the header and then every row in order, each
written as ``json.dumps(cells, ensure_ascii=False, separators=(",", ":")) + "\\n"`` in UTF-8,
where cells are the strings the CSV form of the extract holds ("" for missing).

Signature: Ed25519 over ``json.dumps(manifest_without_signature, sort_keys=True,
separators=(",", ":"), ensure_ascii=False).encode("utf-8")``, stored as standard padded base64.

The manifest is a typed value (:class:`Manifest`), converted to JSON only at the edges: the
gateway sends :meth:`Manifest.to_json`, and a received manifest, untrusted input for
``verify-extract``, is parsed and checked by :meth:`Manifest.from_json`. The JSON bytes are the
ones the dict-building code made before (``tests/store/vectors/manifests.json`` pins them).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from pseudogate.core.errors import InvalidInput, VerificationFailed
from pseudogate.core.linkage_method import Linkage

__all__ = [
    "FEW_OPTOUTS",
    "MANIFEST_FIELDS",
    "ContentHasher",
    "DatasetVersion",
    "Manifest",
    "ManifestKeyIds",
    "content_sha256",
    "load_public_key_pem",
    "load_public_keys_pem",
    "sign_manifest",
    "signing_bytes",
    "verify_manifest_signature",
]

MANIFEST_FIELDS: tuple[str, ...] = (
    "project",
    "datasets",
    "policy_fingerprint",
    "key_ids",
    "linkage",
    "optout_snapshot",
    "optouts_removed",
    "rows",
    "k_achieved",
    "l_achieved",
    "suppressed",
    "loss",
    "created_at",
    "content_sha256",
    "signature",
)


def _line(cells: Sequence[str]) -> bytes:
    return (json.dumps(list(cells), ensure_ascii=False, separators=(",", ":")) + "\n").encode(
        "utf-8"
    )


class ContentHasher:
    """Incremental content hash: feed the header, then rows in order (streams stay bounded)."""

    def __init__(self, header: Sequence[str]) -> None:
        self._h = hashlib.sha256(_line(header))

    def update_rows(self, rows: Iterable[Sequence[str]]) -> None:
        update = self._h.update
        for row in rows:
            update(_line(row))

    def hexdigest(self) -> str:
        return self._h.hexdigest()


def content_sha256(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """The extract's content hash (lowercase hex)."""
    hasher = ContentHasher(header)
    hasher.update_rows(rows)
    return hasher.hexdigest()


#: ``optouts_removed`` below ten: small counts can identify people.
FEW_OPTOUTS: Final = "<10"

#: ``signature`` is absent before signing; ``linkage`` in manifests made before linkage
#: methods existed (issue 10): those extracts were linked exactly, and their signed bytes have
#: no ``linkage`` key, so a parsed one keeps it absent.
_OPTIONAL_ON_INPUT = frozenset({"signature", "linkage"})


@dataclass(frozen=True, slots=True)
class DatasetVersion:
    """One dataset an extract was built from, and the version used."""

    name: str
    version: int

    def to_json_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version}


@dataclass(frozen=True, slots=True)
class ManifestKeyIds:
    """The keys behind an extract: stored tokens, project tokens, this manifest's signature."""

    linkage: str
    project: str
    signing: str

    def to_json_dict(self) -> dict[str, Any]:
        return {"linkage": self.linkage, "project": self.project, "signing": self.signing}


@dataclass(frozen=True, slots=True)
class Manifest:
    """An extract's manifest (docs/extracts.md, section 3); ``signature`` is None until signed.

    Every field is always present in the JSON; ``optout_snapshot``, ``k_achieved`` and
    ``l_achieved`` may be null. ``linkage`` (how ``person`` was made) is written by every
    gateway since issue 10; it is None, and absent from the JSON, only in older manifests. ``loss`` keeps the JSON number it was read as (an ``int`` stays
    an ``int``), so that a received manifest's signed bytes are exactly the ones it was signed
    over.
    """

    project: str
    datasets: tuple[DatasetVersion, ...]
    policy_fingerprint: str
    key_ids: ManifestKeyIds
    optout_snapshot: int | None
    optouts_removed: int | str  # an integer when 10 or more, otherwise FEW_OPTOUTS
    rows: int
    k_achieved: int | None
    l_achieved: int | None
    suppressed: int
    loss: float
    created_at: str
    content_sha256: str
    signature: str | None = None
    linkage: Linkage | None = None

    def to_json_dict(self) -> dict[str, Any]:
        """The JSON object, fields in :data:`MANIFEST_FIELDS` order (no ``signature`` if unsigned)."""
        out: dict[str, Any] = {
            "project": self.project,
            "datasets": [d.to_json_dict() for d in self.datasets],
            "policy_fingerprint": self.policy_fingerprint,
            "key_ids": self.key_ids.to_json_dict(),
        }
        if self.linkage is not None:
            out["linkage"] = self.linkage.to_json_dict()
        out |= {
            "optout_snapshot": self.optout_snapshot,
            "optouts_removed": self.optouts_removed,
            "rows": self.rows,
            "k_achieved": self.k_achieved,
            "l_achieved": self.l_achieved,
            "suppressed": self.suppressed,
            "loss": self.loss,
            "created_at": self.created_at,
            "content_sha256": self.content_sha256,
        }
        if self.signature is not None:
            out["signature"] = self.signature
        return out

    def to_json(self) -> str:
        """The JSON the gateway sends after the data (compact, UTF-8 text as is)."""
        return json.dumps(self.to_json_dict(), ensure_ascii=False, separators=(",", ":"))

    def signing_bytes(self) -> bytes:
        """The bytes the signature covers: every field but ``signature``, canonical JSON."""
        body = self.to_json_dict()
        body.pop("signature", None)
        return _canonical(body)

    def signed(self, sign: Callable[[bytes], bytes]) -> Manifest:
        """This manifest with ``signature`` set; ``sign`` is a ``Signer.sign`` callable."""
        signature = base64.b64encode(sign(self.signing_bytes())).decode("ascii")
        return replace(self, signature=signature)

    @classmethod
    def from_json(cls, text: str | bytes) -> Manifest:
        """Parse and check a received manifest; :class:`InvalidInput` names what is wrong
        (fields, never values: a manifest is untrusted input)."""
        try:
            data = json.loads(text, parse_constant=_refuse_constant)
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise InvalidInput("manifest is not JSON") from None
        return cls.from_json_dict(data)

    @classmethod
    def from_json_dict(cls, data: object) -> Manifest:
        """Check a parsed JSON value and build the manifest (see :meth:`from_json`)."""
        if not isinstance(data, dict):
            raise InvalidInput("manifest is not a JSON object")
        unknown = [k for k in data if k not in MANIFEST_FIELDS]
        if unknown:
            raise InvalidInput(f"manifest has {len(unknown)} unknown field(s)")
        missing = [f for f in MANIFEST_FIELDS if f not in data and f not in _OPTIONAL_ON_INPUT]
        if missing:
            raise InvalidInput(f"manifest lacks field(s): {', '.join(missing)}")
        signature = data.get("signature")
        if signature is not None and not isinstance(signature, str):
            raise _malformed("signature")
        linkage = Linkage.from_json_dict(data["linkage"]) if "linkage" in data else None
        return cls(
            project=_text(data, "project"),
            datasets=_datasets(data["datasets"]),
            policy_fingerprint=_text(data, "policy_fingerprint"),
            key_ids=_key_ids(data["key_ids"]),
            optout_snapshot=_count_or_null(data, "optout_snapshot"),
            optouts_removed=_optouts_removed(data["optouts_removed"]),
            rows=_count(data, "rows"),
            k_achieved=_count_or_null(data, "k_achieved"),
            l_achieved=_count_or_null(data, "l_achieved"),
            suppressed=_count(data, "suppressed"),
            loss=_loss(data["loss"]),
            created_at=_text(data, "created_at"),
            content_sha256=_text(data, "content_sha256"),
            signature=signature,
            linkage=linkage,
        )


def _canonical(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def _refuse_constant(name: str) -> object:
    raise ValueError(f"{name} is not a JSON number")


def _malformed(name: str) -> InvalidInput:
    return InvalidInput(f"manifest field {name!r} is malformed")


def _count_value(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _malformed(name)
    return value


def _text(data: Mapping[str, object], name: str) -> str:
    value = data[name]
    if not isinstance(value, str):
        raise _malformed(name)
    return value


def _count(data: Mapping[str, object], name: str) -> int:
    return _count_value(data[name], name)


def _count_or_null(data: Mapping[str, object], name: str) -> int | None:
    value = data[name]
    return None if value is None else _count_value(value, name)


def _datasets(value: object) -> tuple[DatasetVersion, ...]:
    if not isinstance(value, list):
        raise _malformed("datasets")
    out = []
    for item in value:
        if (
            not isinstance(item, dict)
            or set(item) != {"name", "version"}
            or not isinstance(item["name"], str)
        ):
            raise _malformed("datasets")
        version = _count_value(item["version"], "datasets")
        out.append(DatasetVersion(name=item["name"], version=version))
    return tuple(out)


def _key_ids(value: object) -> ManifestKeyIds:
    names = ("linkage", "project", "signing")
    if (
        not isinstance(value, dict)
        or set(value) != set(names)
        or not all(isinstance(value[n], str) for n in names)
    ):
        raise _malformed("key_ids")
    return ManifestKeyIds(linkage=value["linkage"], project=value["project"],
                          signing=value["signing"])


def _optouts_removed(value: object) -> int | str:
    if isinstance(value, str):
        if value != FEW_OPTOUTS:
            raise _malformed("optouts_removed")
        return FEW_OPTOUTS
    count = _count_value(value, "optouts_removed")
    if count < 10:
        raise _malformed("optouts_removed")
    return count


def _loss(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _malformed("loss")
    if not math.isfinite(value):
        raise _malformed("loss")
    return value


def signing_bytes(manifest: Manifest) -> bytes:
    """The bytes the signature covers: every field but ``signature``, canonical JSON."""
    return manifest.signing_bytes()


def sign_manifest(manifest: Manifest, sign: Callable[[bytes], bytes]) -> Manifest:
    """Return the manifest with ``signature`` set; ``sign`` is a ``Signer.sign`` callable."""
    return manifest.signed(sign)


def load_public_key_pem(pem: bytes | str) -> Ed25519PublicKey:
    """Parse a PEM SubjectPublicKeyInfo Ed25519 public key."""
    data = pem.encode("ascii") if isinstance(pem, str) else pem
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError:
        raise InvalidInput("public key is not a PEM SubjectPublicKeyInfo") from None
    if not isinstance(key, Ed25519PublicKey):
        raise InvalidInput("public key is not an Ed25519 key")
    return key


_PEM_BLOCK = re.compile(
    rb"-----BEGIN PUBLIC KEY-----\r?\n.*?-----END PUBLIC KEY-----", re.DOTALL
)


def load_public_keys_pem(pem: bytes | str) -> list[Ed25519PublicKey]:
    """Every Ed25519 public key in a PEM file: one key, or a bundle of several (concatenated
    ``keys public`` outputs from before and after a rotation of the signing key)."""
    data = pem.encode("ascii") if isinstance(pem, str) else pem
    blocks = _PEM_BLOCK.findall(data)
    if not blocks:
        raise InvalidInput("public key is not a PEM SubjectPublicKeyInfo")
    return [load_public_key_pem(block) for block in blocks]


def verify_manifest_signature(manifest: Manifest, public_key: Ed25519PublicKey) -> None:
    """Raise :class:`VerificationFailed` unless ``signature`` signs the manifest's other fields."""
    sig = manifest.signature
    if sig is None:
        raise VerificationFailed("manifest has no signature")
    try:
        raw = base64.b64decode(sig, validate=True)
        public_key.verify(raw, manifest.signing_bytes())
    except (binascii.Error, ValueError, InvalidSignature):
        raise VerificationFailed("manifest signature does not verify under the public key") from None
