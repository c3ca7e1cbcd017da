"""Offline verification of an extract for auditors: signature, content, k and l, identifiers.

Everything is recomputed from the files an auditor holds (the extract as CSV or Parquet, its
manifest, the gateway's public key and optionally the project's policy); nothing is taken on
the gateway's word. Findings name checks, columns and rows, never a cell value.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from pseudogate.core.encoding import ENCODING_NAME
from pseudogate.core.errors import InvalidInput, VerificationFailed
from pseudogate.core.identifiers import EMAIL_IN_TEXT, NHS_CANDIDATE, POSTCODE_IN_TEXT, SEPARATORS
from pseudogate.core.manifest import ContentHasher, Manifest, verify_manifest_signature
from pseudogate.core.names import PERSON_COLUMN
from pseudogate.core.nhs import is_valid_nhs_number
from pseudogate.core.policy import HierarchyType, Policy

__all__ = [
    "PERSON_COLUMN",
    "CheckResult",
    "CheckStatus",
    "ExtractVerification",
    "Finding",
    "load_manifest",
    "read_extract",
    "recompute_k",
    "recompute_l",
    "scan_identifiers",
    "verify_extract",
]

#: The extract's linkage column (project tokens); k and l count its distinct values.
_MAX_LISTED = 10
#: Linkage encodings documented in docs/linkage.md (a manifest naming another fails).
KNOWN_ENCODINGS = frozenset({ENCODING_NAME})

_ISO_DATE_IN_TEXT = re.compile(r"(?<![0-9])([0-9]{4})-([0-9]{2})-([0-9]{2})(?![0-9])")
_DATE_PREFILTER = r"[0-9]{4}-[0-9]{2}-[0-9]{2}"


class CheckStatus(enum.StrEnum):
    PASS = "PASS"
    FAIL = "FAIL"
    NOT_CHECKED = "NOT CHECKED"


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    status: CheckStatus
    detail: str


@dataclass(frozen=True, slots=True)
class Finding:
    """A cell that looks like a direct identifier: where and what kind, never the value."""

    row: int  # 1-based data row (line row+1 of the CSV)
    column: str
    kind: str  # "NHS number", "postcode", "email address", "full date"

    def describe(self) -> str:
        return f"column {self.column!r} row {self.row}: {self.kind}"


@dataclass
class ExtractVerification:
    """Every check and its outcome; ``ok`` unless one failed (not-checked does not fail)."""

    results: list[CheckResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.status is not CheckStatus.FAIL for r in self.results)

    def add(self, name: str, passed: bool | None, detail: str) -> None:
        status = (
            CheckStatus.NOT_CHECKED if passed is None
            else CheckStatus.PASS if passed else CheckStatus.FAIL
        )
        self.results.append(CheckResult(name, status, detail))

    def render(self) -> str:
        width = max(len(r.name) for r in self.results)
        lines = [f"  {r.status.value:<11}  {r.name:<{width}}  {r.detail}" for r in self.results]
        lines.append(f"VERDICT: {'PASS' if self.ok else 'FAIL'}")
        return "\n".join(lines)


# -- reading ------------------------------------------------------------------------------------


def load_manifest(path: Path) -> Manifest:
    """Read and check a manifest file (untrusted: a malformed one is :class:`InvalidInput`)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read manifest {path}: {exc.strerror}") from None
    try:
        return Manifest.from_json(data)
    except InvalidInput as exc:
        raise InvalidInput(f"{path}: {exc}") from None


def read_extract(path: Path) -> pd.DataFrame:
    """The extract as a table of strings ("" for missing), from ``.csv`` or ``.parquet``."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        try:
            frame = pd.read_csv(
                path, sep=",", dtype=str, keep_default_na=False, encoding="utf-8",
                na_filter=False,
            )
        except FileNotFoundError:
            raise InvalidInput(f"extract {path} does not exist") from None
        except UnicodeDecodeError:
            raise InvalidInput(f"extract {path} is not UTF-8") from None
        except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError):
            # pandas' messages can quote the data: say only what is wrong.
            raise InvalidInput(f"extract {path} is not a well-formed CSV with a header") from None
        except OSError as exc:
            raise InvalidInput(f"cannot read extract {path}: {exc.strerror}") from None
        return frame
    if suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except FileNotFoundError:
            raise InvalidInput(f"extract {path} does not exist") from None
        except (OSError, pa.ArrowException):
            raise InvalidInput(f"extract {path} is not a readable Parquet file") from None
        columns = {}
        for name, column in zip(table.column_names, table.columns, strict=True):
            try:
                text = column.cast(pa.string())
            except pa.ArrowException:
                raise InvalidInput(f"extract column {name!r} cannot be read as text") from None
            columns[name] = pc.fill_null(text, "").to_pylist()
        return pd.DataFrame(columns, columns=table.column_names, dtype=object)
    raise InvalidInput(f"extract {path}: expected a .csv or .parquet file")


# -- k, l and the identifier scan ---------------------------------------------------------------


def _per_class_distinct(frame: pd.DataFrame, qis: Sequence[str], column: str) -> int | None:
    if frame.empty:
        return None
    if not qis:
        return int(frame[column].nunique())
    return int(frame.groupby(list(qis), sort=False)[column].nunique().min())


def recompute_k(frame: pd.DataFrame, quasi_identifiers: Sequence[str]) -> int | None:
    """Smallest number of distinct people (``person`` values) in any class of the QI columns;
    rows when the extract has no ``person`` column; None for an empty extract."""
    if PERSON_COLUMN in frame.columns:
        return _per_class_distinct(frame, quasi_identifiers, PERSON_COLUMN)
    if frame.empty:
        return None
    if not quasi_identifiers:
        return len(frame)
    return int(frame.groupby(list(quasi_identifiers), sort=False).size().min())


def recompute_l(
    frame: pd.DataFrame, quasi_identifiers: Sequence[str], sensitive: Sequence[str]
) -> int | None:
    """Smallest number of distinct values of any sensitive column in any class."""
    values = [_per_class_distinct(frame, quasi_identifiers, s) for s in sensitive]
    present = [v for v in values if v is not None]
    return min(present) if present else None


def _rows(mask: pd.Series) -> list[int]:
    return [int(i) + 1 for i in mask[mask].index]


def scan_identifiers(
    frame: pd.DataFrame, *, date_columns: Sequence[str] = ()
) -> list[Finding]:
    """Cells that are or contain direct identifiers, in column then row order.

    NHS number: the cell without spaces and hyphens is a valid 10-digit NHS number. Postcode
    and email: contained anywhere in the cell. Full ISO date (YYYY-MM-DD, a real date): only in
    ``date_columns`` (those the policy generalises as dates).
    """
    findings: list[Finding] = []
    frame = frame.reset_index(drop=True)
    for column in frame.columns:
        cells = frame[column].astype(str)
        compact = cells.str.replace(SEPARATORS, "", regex=True)
        candidates = cells[compact.str.fullmatch(NHS_CANDIDATE)]
        findings += [
            Finding(r, column, "NHS number") for r in _rows(candidates.map(is_valid_nhs_number))
        ]
        postcode = cells.str.contains(POSTCODE_IN_TEXT, case=False, regex=True)
        findings += [Finding(r, column, "postcode") for r in _rows(postcode)]
        email = cells.str.contains(EMAIL_IN_TEXT, regex=True)
        findings += [Finding(r, column, "email address") for r in _rows(email)]
        if column in date_columns:
            candidates = cells[cells.str.contains(_DATE_PREFILTER, regex=True)]
            findings += [
                Finding(r, column, "full date") for r in _rows(candidates.map(_has_full_date))
            ]
    return findings


def _has_full_date(cell: str) -> bool:
    for match in _ISO_DATE_IN_TEXT.finditer(cell):
        try:
            dt.date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
        except ValueError:
            continue
        return True
    return False


# -- the verification ---------------------------------------------------------------------------


def _content_hash(frame: pd.DataFrame) -> str:
    hasher = ContentHasher([str(c) for c in frame.columns])
    hasher.update_rows(frame.itertuples(index=False, name=None))
    return hasher.hexdigest()


def _compare(
    result: ExtractVerification,
    name: str,
    recomputed: int | None,
    claimed: int | None,
    minimum: int | None,
) -> None:
    want = f", policy requires >= {minimum}" if minimum is not None else ""
    detail = f"recomputed {recomputed}, manifest says {claimed}{want}"
    passed = recomputed == claimed and (
        minimum is None or recomputed is None or recomputed >= minimum
    )
    result.add(name, passed, detail)


def verify_extract(
    path: Path,
    manifest: Manifest,
    public_key: Ed25519PublicKey,
    *,
    policy: Policy | None = None,
) -> ExtractVerification:
    """Run every check and return the outcomes (this never stops at the first failure)."""
    result = ExtractVerification()
    try:
        verify_manifest_signature(manifest, public_key)
        result.add("manifest signature", True, "valid Ed25519 signature by the public key")
    except VerificationFailed as exc:
        result.add("manifest signature", False, str(exc))

    frame = read_extract(path)
    digest = _content_hash(frame)
    claimed = manifest.content_sha256
    result.add(
        "content hash",
        digest == claimed,
        "SHA-256 of the content matches content_sha256" if digest == claimed
        else "SHA-256 of the content differs from content_sha256 (the extract was altered)",
    )
    rows = manifest.rows
    result.add("row count", rows == len(frame), f"{len(frame)} rows, manifest says {rows}")
    _check_linkage(result, manifest)

    date_columns: list[str] = []
    if policy is None:
        result.add("policy fingerprint", None, "no --policy given")
        result.add("k and l", None, "k and l not checked (no --policy given)")
    else:
        claimed_fp = manifest.policy_fingerprint
        result.add(
            "policy fingerprint",
            policy.fingerprint == claimed_fp,
            "the policy's fingerprint equals policy_fingerprint" if policy.fingerprint == claimed_fp
            else "the policy's fingerprint differs from policy_fingerprint (another policy)",
        )
        date_columns = [
            r.name for r in policy.columns
            if r.hierarchy is not None and r.hierarchy.type is HierarchyType.DATE
        ]
        _check_k_l(result, frame, manifest, policy)

    findings = scan_identifiers(frame, date_columns=date_columns)
    scope = "NHS numbers, postcodes, email addresses" + (
        ", full dates in date-generalised columns" if policy is not None
        else " (full dates need --policy)"
    )
    if findings:
        listed = "; ".join(f.describe() for f in findings[:_MAX_LISTED])
        more = f"; and {len(findings) - _MAX_LISTED} more" if len(findings) > _MAX_LISTED else ""
        result.add("identifier scan", False, f"{len(findings)} cell(s) found: {listed}{more}")
    else:
        result.add("identifier scan", True, f"none found ({scope})")
    return result


def _check_linkage(result: ExtractVerification, manifest: Manifest) -> None:
    """How ``person`` was made: signed with the rest; an encoding must be a documented one."""
    linkage = manifest.linkage
    if linkage is None:
        result.add("linkage", None, "the manifest predates the linkage field (exact linkage)")
    elif linkage.probabilistic and linkage.encoding not in KNOWN_ENCODINGS:
        result.add(
            "linkage", False,
            f"unknown encoding (this verifier knows {', '.join(sorted(KNOWN_ENCODINGS))})",
        )
    else:
        result.add("linkage", True, linkage.describe() + ", covered by the signature")


def _check_k_l(
    result: ExtractVerification, frame: pd.DataFrame, manifest: Manifest, policy: Policy
) -> None:
    qis = list(policy.quasi_identifiers)
    sensitive = list(policy.sensitive_columns)
    missing = [c for c in [*qis, *sensitive] if c not in frame.columns]
    if missing:
        detail = f"policy column(s) missing from the extract: {', '.join(missing)}"
        result.add("k-anonymity", False, detail)
        result.add("l-diversity", False, detail)
        return
    privacy = policy.privacy
    k_min = privacy.k if privacy is not None else None
    _compare(result, "k-anonymity", recompute_k(frame, qis), manifest.k_achieved, k_min)
    l_min = privacy.l if privacy is not None else None
    if l_min is None:
        claimed_l = manifest.l_achieved
        result.add(
            "l-diversity", claimed_l is None,
            "the policy sets no l; manifest l_achieved is " + json.dumps(claimed_l),
        )
    else:
        _compare(
            result, "l-diversity", recompute_l(frame, qis, sensitive),
            manifest.l_achieved, l_min,
        )
