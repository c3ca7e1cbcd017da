"""Build the register's static site from :class:`RegisterFacts`, atomically.

The site is rendered with Jinja2 (autoescaping on) into a new folder beside the target, then
swapped in with one ``renameat2(RENAME_EXCHANGE)`` where the system has it, so a reader (a web
server, a browser on ``file://``) sees the old site or the new one, never half of either.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jinja2

from pseudogate.core.errors import FailedPrecondition
from pseudogate.register.charts import bar_chart
from pseudogate.register.disclosure import FEW
from pseudogate.register.facts import (
    MANIFEST_NOT_KEPT,
    NOT_RECORDED,
    PUBLIC_PROJECT_FIELDS,
    RegisterFacts,
)

__all__ = ["FORMAT", "MARKER", "register_document", "render_site", "write_site"]

#: ``format`` of register.json (docs/register.md).
FORMAT = "pseudogate-register/1"
#: The file that marks a folder as a built register (an existing target without it is refused).
MARKER = "register.json"

_HERE = Path(__file__).parent
_STATIC = _HERE / "static"


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(_HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["shown"] = lambda v: v if isinstance(v, str) else f"{v:,}"
    env.filters["day"] = lambda t: str(t)[:10]
    return env


def register_document(facts: RegisterFacts) -> dict[str, Any]:
    """register.json: every fact of the site, counts as shown (never exact)."""
    return {
        "format": FORMAT,
        "generated_at": facts.generated_at,
        "disclosure_control": {
            "rule": "counts of people and records: 1 to 9 shown as \"<10\", others rounded to "
            "the nearest 5, 0 stays 0; counts of organisations, datasets, projects and "
            "releases are exact; signed manifests are published as signed",
            "few": FEW,
        },
        "summary": dict(facts.summary),
        "providers": [
            {
                "organisation": p.organisation,
                "datasets": [
                    {
                        "name": d.name,
                        "created_at": d.created_at,
                        "versions": [
                            {"version": v.version, "created_at": v.created_at,
                             "records": v.records}
                            for v in d.versions
                        ],
                    }
                    for d in p.datasets
                ],
            }
            for p in facts.providers
        ],
        "projects": [
            {
                "id": p.id,
                **{name: p.statements.get(name) for name in PUBLIC_PROJECT_FIELDS},
                "researcher": p.researcher,
                "datasets": list(p.datasets),
                "domain": p.domain,
                "linkage": p.linkage,
                "created_at": p.created_at,
                "expires": p.expires,
                "status": p.status,
                "people": p.people,
                "policy_fingerprint": p.policy_fingerprint,
                "policy_text": p.policy_text,
                "policy_files": list(p.policy_files),
                "policy": [row.to_json() for row in p.rows],
                "releases": list(p.releases),
                "earlier_releases": [r.audit_seq for r in p.earlier_releases],
                "page": f"projects/{p.id}.html",
            }
            for p in facts.projects
        ],
        "releases": [
            {
                "id": r.id,
                "project": r.project,
                "created_at": r.created_at,
                "rows": r.rows,
                "people": r.people,
                "k_achieved": r.manifest.k_achieved,
                "l_achieved": r.manifest.l_achieved,
                "suppressed": r.suppressed,
                "optouts_removed": r.optouts_removed,
                "content_sha256": r.manifest.content_sha256,
                "signing_key": r.manifest.key_ids.signing,
                "manifest_file": f"releases/{r.id}.manifest.json",
                "manifest": json.loads(r.manifest_json),
            }
            for r in facts.releases
        ],
        "earlier_releases": [
            {
                "audit_seq": r.audit_seq,
                "project": r.project,
                "created_at": r.created_at,
                "rows": r.rows,
                "manifest": None,
                "note": MANIFEST_NOT_KEPT,
            }
            for r in facts.earlier_releases
        ],
        "optout_snapshots": [
            {"id": o.id, "domain": o.domain, "created_at": o.created_at, "people": o.people}
            for o in facts.optouts
        ],
        "signing_keys": [
            {"key_id": k.key_id, "status": k.status, "created": k.created,
             "spki_sha256": k.spki_sha256, "pem": k.pem, "file": f"keys/{k.key_id}.pem"}
            for k in facts.keys
        ],
        "audit": {
            "events": facts.audit_events,
            "latest_checkpoint": None if facts.checkpoint is None else {
                "seq": facts.checkpoint.seq, "hash": facts.checkpoint.hash,
                "time": facts.checkpoint.time, "signature": facts.checkpoint.signature,
            },
        },
    }


def render_site(facts: RegisterFacts, out: Path) -> None:
    """Write every file of the site into the (empty, existing) folder ``out``."""
    env = _environment()
    keys_json = {k.key_id: k.spki_base64 for k in facts.keys}
    common: dict[str, Any] = {
        "facts": facts,
        "summary": facts.summary,
        "not_recorded": NOT_RECORDED,
        "manifest_not_kept": MANIFEST_NOT_KEPT,
        "project_ids": {p.id for p in facts.projects},
        "keys_json": keys_json,
    }

    def page(template: str, path: str, **context: Any) -> None:
        depth = path.count("/")
        target = out / path
        target.parent.mkdir(parents=True, exist_ok=True)
        html = env.get_template(template).render(
            **common, **context, root="../" * depth, current=template
        )
        target.write_text(html, encoding="utf-8")

    months = facts.releases_per_month()
    people = [(p.title, p.people) for p in facts.projects]
    page("index.html", "index.html", months=months, month_chart=bar_chart(months),
         people=people, people_chart=bar_chart(people))
    page("providers.html", "providers.html")
    page("projects.html", "projects.html")
    releases_by_id = {r.id: r for r in facts.releases}
    for project in facts.projects:
        page("project.html", f"projects/{project.id}.html", project=project,
             releases=[releases_by_id[i] for i in project.releases])
    page("releases.html", "releases.html")
    page("keys.html", "keys.html")
    (out / "releases").mkdir(exist_ok=True)
    for release in facts.releases:
        (out / "releases" / f"{release.id}.manifest.json").write_bytes(
            release.manifest_json.encode("utf-8")
        )
    (out / "keys").mkdir(exist_ok=True)
    for key in facts.keys:
        (out / "keys" / f"{key.key_id}.pem").write_text(key.pem, encoding="utf-8")
    if facts.checkpoint is not None:
        (out / "checkpoint.json").write_text(facts.checkpoint.to_json(), encoding="utf-8")
    (out / "feed.atom").write_text(
        env.get_template("feed.atom").render(**common), encoding="utf-8"
    )
    shutil.copytree(_STATIC, out / "static")
    (out / MARKER).write_text(
        json.dumps(register_document(facts), ensure_ascii=False, indent=2) + "\n",
        encoding="utf-8",
    )


def write_site(out: Path, render: Callable[[Path], None]) -> Path:
    """Run ``render`` into a new folder beside ``out``, then swap it in atomically.

    ``out`` may be missing, an empty folder, or a register built before (it has
    ``register.json``); anything else is refused, so a mistyped path never loses a folder.
    """
    out = out.absolute()
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / MARKER).is_file())):
        raise FailedPrecondition(
            f"{out} exists and is not a register built before (no {MARKER}): choose an empty "
            "or new folder"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.new-", dir=out.parent))
    try:
        render(staging)
        _publishable(staging)
        if out.exists():
            _swap(staging, out)  # staging now holds the old site
            shutil.rmtree(staging)
        else:
            os.rename(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


def _publishable(root: Path) -> None:
    """Folders 0755 and files 0644: a register is public (the CLI's umask makes them private)."""
    os.chmod(root, 0o755)
    for folder, dirs, files in os.walk(root):
        for name in dirs:
            os.chmod(Path(folder) / name, 0o755)
        for name in files:
            os.chmod(Path(folder) / name, 0o644)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _swap(new: Path, current: Path) -> None:
    """Exchange two folders atomically (Linux renameat2); elsewhere, two renames."""
    libc_name = ctypes.util.find_library("c")
    renameat2 = getattr(ctypes.CDLL(libc_name, use_errno=True), "renameat2", None) \
        if libc_name else None
    if renameat2 is not None:
        result = renameat2(_AT_FDCWD, os.fsencode(new), _AT_FDCWD, os.fsencode(current),
                           _RENAME_EXCHANGE)
        if result == 0:
            return
    # No atomic exchange here: the old site is moved aside, then the new one into place.
    aside = current.with_name(f".{current.name}.old-{os.getpid()}")
    os.rename(current, aside)
    os.rename(new, current)
    os.rename(aside, new)
