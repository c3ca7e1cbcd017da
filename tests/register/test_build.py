"""The register builder over a real gateway run: pages, register.json, disclosure control,
published manifests, atomic rebuilds, and a scan of every byte for tokens and raw values."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pseudogate.cli import main
from pseudogate.core.errors import FailedPrecondition
from pseudogate.core.manifest import Manifest, load_public_keys_pem, verify_manifest_signature
from pseudogate.register import FEW, PublicKey, RegisterFacts, build_register, shown_count
from pseudogate.register.site import MARKER
from tests.register.gateway_run import STATEMENTS, GatewayRun

PAGES = ("index.html", "providers.html", "projects.html", "releases.html", "keys.html",
         "projects/frailty-study.html", "projects/housing-study.html")
#: Fields of register.json that hold counts of people or records (disclosure-controlled).
COUNT_FIELDS = {"records", "people", "rows", "suppressed", "optouts_removed", "people_opted_out"}


@pytest.mark.parametrize(
    ("count", "shown"),
    [(0, 0), (1, FEW), (9, FEW), (10, 10), (12, 10), (13, 15), (17, 15), (18, 20),
     (263, 265), (265, 265), (1002, 1000), (1003, 1005)],
)
def test_when_a_count_is_shown_then_small_ones_are_hidden_and_others_rounded_to_5(
    count: int, shown: int | str
) -> None:
    assert shown_count(count) == shown


@pytest.mark.parametrize("bad", [-1, True, 2.0])
def test_when_a_count_is_not_a_non_negative_integer_then_it_is_refused(bad: Any) -> None:
    with pytest.raises(ValueError):
        shown_count(bad)


def test_when_the_register_is_built_then_every_page_and_file_is_there(site: Path) -> None:
    for page in PAGES:
        html = (site / page).read_text(encoding="utf-8")
        assert html.count("<h1") == 1, page
        assert '<html lang="en"' in html
    for name in ("register.json", "feed.atom", "checkpoint.json", "keys/example-sign.pem",
                 "static/govuk/govuk-frontend.min.css", "static/register.js",
                 "static/govuk/assets/fonts/bold-b542beb274-v2.woff2"):
        assert (site / name).is_file(), name
    assert "url(/assets/" not in (site / "static/govuk/govuk-frontend.min.css").read_text()
    assert not re.search(r"https?://(?!www\.w3\.org/)", "".join(
        (site / p).read_text(encoding="utf-8") for p in PAGES
    )), "a page refers to another site (no CDN, no external asset)"


def test_when_a_page_is_built_then_templates_escape_what_they_show(site: Path) -> None:
    keys = (site / "keys.html").read_text(encoding="utf-8")
    assert "-----BEGIN PUBLIC KEY-----" in keys
    releases = (site / "releases.html").read_text(encoding="utf-8")
    assert "&#34;project&#34;:&#34;frailty-study&#34;" in releases  # manifest JSON, escaped


def test_when_manifests_are_published_then_they_are_byte_identical_to_those_received(
    site: Path, run: GatewayRun
) -> None:
    published = sorted((site / "releases").glob("*.manifest.json"), key=lambda p: int(p.name.split(".")[0]))
    assert [p.read_bytes() for p in published] == [m.encode("utf-8") for m in run.manifests]
    keys = load_public_keys_pem((site / "keys" / "example-sign.pem").read_bytes())
    for path in published:
        verify_manifest_signature(Manifest.from_json(path.read_bytes()), keys[0])
    doc = json.loads((site / "register.json").read_text(encoding="utf-8"))
    assert [r["manifest"] for r in doc["releases"]] == [json.loads(m) for m in run.manifests]


def test_when_register_json_is_read_then_it_has_the_shown_figures_of_the_run(
    site: Path, run: GatewayRun
) -> None:
    doc = json.loads((site / "register.json").read_text(encoding="utf-8"))
    assert doc["format"] == "pseudogate-register/1"
    assert doc["summary"] == {
        "organisations": 2, "datasets": 2, "projects": 2, "releases": 3,
        "records": shown_count(280 + 240), "people_opted_out": shown_count(run.optout_people),
    }
    providers = {p["organisation"]: p for p in doc["providers"]}
    council = providers["denbighshire-council"]["datasets"][0]
    assert [v["version"] for v in council["versions"]] == [1, 2]
    assert [r["project"] for r in doc["releases"]] == [
        "frailty-study", "housing-study", "frailty-study"
    ]
    for release, manifest, people in zip(doc["releases"], run.manifests, run.people, strict=True):
        exact = json.loads(manifest)
        assert release["rows"] == shown_count(exact["rows"])
        assert release["people"] == shown_count(people)
        assert release["k_achieved"] == exact["k_achieved"]
        assert release["content_sha256"] == exact["content_sha256"]
    project = doc["projects"][0]
    assert project["id"] == "frailty-study"
    assert {k: project[k] for k in STATEMENTS["frailty-study"]} == STATEMENTS["frailty-study"]
    assert project["releases"] == [1, 3]
    assert {"column": "k", "dataset": "", "treatment": project["policy"][-3]["treatment"]} \
        == project["policy"][-3]
    assert project["policy"][-3]["treatment"].startswith("k = 5")
    assert doc["signing_keys"][0]["key_id"] == "example-sign"
    assert len(doc["signing_keys"][0]["spki_sha256"]) == 64
    assert doc["audit"]["latest_checkpoint"]["seq"] <= doc["audit"]["events"]


def _counts(value: Any, key: str | None = None) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for k, v in value.items():
            if k != "manifest":  # the signed manifests are published as signed
                yield from _counts(v, k)
    elif isinstance(value, list):
        for item in value:
            yield from _counts(item, key)
    elif key in COUNT_FIELDS:
        yield key, value


def test_when_register_json_shows_a_count_of_people_or_records_then_it_is_controlled(
    site: Path,
) -> None:
    doc = json.loads((site / "register.json").read_text(encoding="utf-8"))
    counts = list(_counts(doc))
    assert len(counts) > 10
    for key, value in counts:
        assert value == FEW or (isinstance(value, int) and value % 5 == 0), (key, value)


def test_when_the_site_is_scanned_then_no_token_and_no_raw_value_is_in_it(
    site: Path, run: GatewayRun
) -> None:
    assert len(run.tokens) > 500 and len(run.raw_values) > 500
    generated = ""
    everything = b""
    for path in sorted(p for p in site.rglob("*") if p.is_file()):
        data = path.read_bytes()
        everything += data
        if "static" not in path.relative_to(site).parts:  # static/ is package files, copied
            generated += data.decode("utf-8")
    text = everything.decode("utf-8", errors="replace")
    leaked = [t for t in run.tokens if t in text]
    assert not leaked, f"{len(leaked)} token(s) in the site"
    words = set(re.findall(r"[\w'@.+-]+", generated))
    found = [v for v in run.raw_values if v in generated and (v in words or len(v) > 6)]
    assert not found, f"raw values in the site: {found[:5]}"


def test_when_a_project_states_why_then_its_page_and_the_listing_show_it(site: Path) -> None:
    """The statements given to CreateProject, on the project's page (escaped) and the list."""
    page = (site / "projects" / "frailty-study.html").read_text(encoding="utf-8")
    stated = STATEMENTS["frailty-study"]
    assert "Frailty &lt;and&gt; falls in older people" in page and "<and>" not in page
    assert "<h1" in page and "Frailty &lt;and&gt; falls" in page.split("<h1", 1)[1][:200]
    for line in stated["purpose"].replace("&", "&amp;").split("\n"):
        assert line in page
    assert stated["legal_basis"] in page and stated["public_benefit"] in page
    assert "not recorded" not in page
    listing = (site / "projects.html").read_text(encoding="utf-8")
    assert "Social care and health" in listing


def test_when_a_catalog_predates_public_statements_then_its_projects_show_not_recorded(
    run: GatewayRun, public_keys: list[PublicKey], tmp_path: Path
) -> None:
    """A catalog made before the statements existed gets the columns (NULL) when opened."""
    data = tmp_path / "data"
    shutil.copytree(run.data_dir, data, ignore=shutil.ignore_patterns("store.lock"))
    with sqlite3.connect(data / "catalog.sqlite3") as db:
        for column in ("title", "purpose", "legal_basis", "public_benefit"):
            db.execute(f"ALTER TABLE projects DROP COLUMN {column}")
    facts = build_register(data, tmp_path / "site", public_keys=public_keys)
    assert all(set(p.statements.values()) == {None} for p in facts.projects)
    for project in ("frailty-study", "housing-study"):
        page = (tmp_path / "site" / "projects" / f"{project}.html").read_text(encoding="utf-8")
        assert page.count("not recorded") == 4
        assert "Frailty" not in page
    doc = json.loads((tmp_path / "site" / "register.json").read_text(encoding="utf-8"))
    for project in doc["projects"]:
        assert [project[k] for k in STATEMENTS["frailty-study"]] == [None] * 4
    with sqlite3.connect(data / "catalog.sqlite3") as db:
        columns = {r[1] for r in db.execute("PRAGMA table_info(projects)")}
    assert {"title", "purpose", "legal_basis", "public_benefit"} <= columns


def test_when_a_project_links_probabilistically_then_its_page_and_json_say_how(
    run: GatewayRun, public_keys: list[PublicKey], tmp_path: Path
) -> None:
    """The linkage method as the releases' manifests state it, in plain words on the page."""
    data = tmp_path / "data"
    shutil.copytree(run.data_dir, data, ignore=shutil.ignore_patterns("store.lock"))
    with sqlite3.connect(data / "catalog.sqlite3") as db:
        db.execute("UPDATE projects SET linkage = 'probabilistic', linkage_threshold = 0.7 "
                   "WHERE id = 'housing-study'")
    build_register(data, tmp_path / "site", public_keys=public_keys)
    doc = json.loads((tmp_path / "site" / "register.json").read_text(encoding="utf-8"))
    linkage = {p["id"]: p["linkage"] for p in doc["projects"]}
    assert linkage == {
        "frailty-study": {"method": "exact"},
        "housing-study": {"method": "probabilistic", "threshold": 0.7, "encoding": "pg-fbf-v1"},
    }
    pages = {name: (tmp_path / "site" / "projects" / f"{name}.html").read_text(encoding="utf-8")
             for name in linkage}
    assert "How records are linked" in pages["frailty-study"]
    assert "sealed encodings" not in pages["frailty-study"]
    assert "sealed encodings (pg-fbf-v1, match probability at least 0.7)" in pages["housing-study"]


def test_when_a_release_predates_kept_manifests_then_the_audit_log_lists_it(
    run: GatewayRun, before_register: tuple[Path, RegisterFacts]
) -> None:
    site, facts = before_register
    first = json.loads(run.manifests[0])
    assert [r.id for r in facts.releases] == [2, 3]
    (earlier,) = facts.earlier_releases
    assert earlier.project == "frailty-study" and earlier.rows == shown_count(first["rows"])
    assert earlier.created_at[:19] == first["created_at"][:19]
    assert facts.summary["releases"] == 3
    assert sum(n for _, n in facts.releases_per_month()) == 3

    doc = json.loads((site / "register.json").read_text(encoding="utf-8"))
    assert doc["summary"]["releases"] == 3
    assert [r["id"] for r in doc["releases"]] == [2, 3]
    assert doc["earlier_releases"] == [{
        "audit_seq": earlier.audit_seq, "project": "frailty-study",
        "created_at": earlier.created_at, "rows": shown_count(first["rows"]),
        "manifest": None, "note": "manifest not kept (released before the register)",
    }]
    frailty = next(p for p in doc["projects"] if p["id"] == "frailty-study")
    assert frailty["releases"] == [3] and frailty["earlier_releases"] == [earlier.audit_seq]
    assert not (site / "releases" / "1.manifest.json").exists()

    page = (site / "releases.html").read_text(encoding="utf-8")
    section = page.split("Releases made before this register", 1)[1]
    row = re.search(rf'<tr[^>]*id="earlier-release-{earlier.audit_seq}".*?</tr>', section, re.DOTALL)
    assert row is not None
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row.group(0), re.DOTALL)
    assert earlier.created_at[:10] in cells[0] and "frailty-study" in cells[1]
    shown = shown_count(first["rows"])
    assert cells[2] == (f"{shown:,}" if isinstance(shown, int) else "&lt;10")
    assert cells[3] == "manifest not kept (released before the register)"
    assert "Verify" not in section and "data-verify" not in section and "<button" not in section
    assert page.count('data-module="register-verify"') == 2  # the two kept manifests only
    project_page = (site / "projects" / "frailty-study.html").read_text(encoding="utf-8")
    assert f'releases.html#earlier-release-{earlier.audit_seq}"' in project_page
    assert "manifest not kept (released before the register)" in project_page
    feed = (site / "feed.atom").read_text(encoding="utf-8")
    assert f"urn:pseudogate:register:audit-event:{earlier.audit_seq}" in feed
    assert feed.count("<entry>") == 3


def _without_manifests(
    run: GatewayRun, public_keys: list[PublicKey], tmp_path: Path, where: str
) -> RegisterFacts:
    data = tmp_path / "data"
    shutil.copytree(run.data_dir, data, ignore=shutil.ignore_patterns("store.lock"))
    with sqlite3.connect(data / "catalog.sqlite3") as db:
        db.execute(f"DELETE FROM released_manifests WHERE {where}")
    return build_register(data, tmp_path / "site", public_keys=public_keys)


def test_when_no_manifest_was_kept_then_every_release_is_listed_from_the_audit_log(
    run: GatewayRun, public_keys: list[PublicKey], tmp_path: Path
) -> None:
    facts = _without_manifests(run, public_keys, tmp_path, "1 = 1")
    assert facts.releases == ()
    assert [(r.project, r.rows) for r in facts.earlier_releases] == [
        (json.loads(m)["project"], shown_count(json.loads(m)["rows"])) for m in run.manifests
    ]
    assert facts.summary["releases"] == 3
    page = (tmp_path / "site" / "releases.html").read_text(encoding="utf-8")
    assert "No data has been released yet" not in page
    assert page.count("manifest not kept (released before the register)") == 3


def test_when_an_extract_after_the_first_kept_manifest_kept_none_then_it_is_not_a_release(
    run: GatewayRun, public_keys: list[PublicKey], tmp_path: Path
) -> None:
    """Its manifest is kept before the first row is sent: without one, the extract never left
    (a crash between its audit event and keeping the manifest)."""
    facts = _without_manifests(run, public_keys, tmp_path, "id = 3")
    assert [r.id for r in facts.releases] == [1, 2]
    assert facts.earlier_releases == ()
    assert facts.summary["releases"] == 2


def test_when_every_manifest_is_kept_then_no_release_is_listed_as_earlier(
    built: tuple[Path, RegisterFacts],
) -> None:
    site, facts = built
    assert facts.earlier_releases == ()
    assert "Releases made before this register" not in (site / "releases.html").read_text(
        encoding="utf-8"
    )


def test_when_the_register_is_rebuilt_then_the_folder_is_replaced_whole(
    run: GatewayRun, public_keys: list[PublicKey], tmp_path: Path
) -> None:
    site = tmp_path / "site"
    build_register(run.data_dir, site, public_keys=public_keys)
    (site / "stale.html").write_text("old", encoding="utf-8")
    inode = site.stat().st_ino
    build_register(run.data_dir, site, public_keys=public_keys)
    assert not (site / "stale.html").exists()
    assert (site / MARKER).is_file() and site.stat().st_ino != inode
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site"]  # no staging left behind


def test_when_a_rebuild_fails_then_the_old_site_stays_and_nothing_is_left_behind(
    run: GatewayRun, public_keys: list[PublicKey], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    site = tmp_path / "site"
    build_register(run.data_dir, site, public_keys=public_keys)
    before = (site / "index.html").read_bytes()

    def broken(facts: RegisterFacts, out: Path) -> None:
        (out / "index.html").write_text("half a site", encoding="utf-8")
        raise OSError("disk full")

    monkeypatch.setattr("pseudogate.register.render_site", broken)
    with pytest.raises(OSError):
        build_register(run.data_dir, site, public_keys=public_keys)
    assert (site / "index.html").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site"]


def test_when_the_target_is_a_folder_that_is_not_a_register_then_it_is_refused_untouched(
    run: GatewayRun, public_keys: list[PublicKey], tmp_path: Path
) -> None:
    (tmp_path / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(FailedPrecondition, match="not a register"):
        build_register(run.data_dir, tmp_path, public_keys=public_keys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_when_the_keys_given_did_not_sign_the_releases_then_the_build_is_refused(
    run: GatewayRun, tmp_path: Path
) -> None:
    with pytest.raises(FailedPrecondition, match="release 1 was signed with key example-sign"):
        build_register(run.data_dir, tmp_path / "site", public_keys=[])
    assert not (tmp_path / "site").exists()


def test_when_extracts_are_released_then_the_store_keeps_each_manifest_and_people_count(
    run: GatewayRun,
) -> None:
    with sqlite3.connect(run.data_dir / "catalog.sqlite3") as db:
        rows = db.execute(
            "SELECT project, people, manifest_json FROM released_manifests ORDER BY id"
        ).fetchall()
    assert [r[2] for r in rows] == run.manifests
    assert [r[1] for r in rows] == run.people
    assert [r[0] for r in rows] == ["frailty-study", "housing-study", "frailty-study"]


def test_when_the_cli_builds_the_register_then_it_says_where_to_open_it(
    run: GatewayRun, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = tmp_path / "site"
    assert main(["register", "build", "--data-dir", str(run.data_dir), "--out", str(site)]) == 0
    out = capsys.readouterr().out
    assert "3 release(s)" in out and str(site / "index.html") in out
    assert (site / "index.html").stat().st_mode & 0o777 == 0o644  # public, whatever the umask


def test_when_the_feed_is_read_then_it_has_one_entry_per_release(site: Path) -> None:
    import xml.etree.ElementTree as ET

    feed = ET.parse(site / "feed.atom").getroot()
    ns = {"a": "http://www.w3.org/2005/Atom"}
    entries = feed.findall("a:entry", ns)
    assert len(entries) == 3
    assert all(e.find("a:id", ns) is not None for e in entries)


def test_when_register_json_is_documented_then_every_field_is_in_docs_register_md(
    site: Path,
) -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "register.md").read_text(
        encoding="utf-8"
    )
    doc = json.loads((site / "register.json").read_text(encoding="utf-8"))
    missing = [k for k in doc if f"`{k}`" not in docs and f"`{k}[]`" not in docs]
    for section in ("summary", "audit"):
        missing += [k for k in doc[section] if f"`{k}`" not in docs]
    for section in ("providers", "projects", "releases", "optout_snapshots", "signing_keys"):
        missing += [k for k in doc[section][0] if f"`{k}`" not in docs]
    assert not missing, f"register.json fields missing from docs/register.md: {missing}"


def test_when_earlier_releases_are_in_register_json_then_their_fields_are_documented(
    before_register: tuple[Path, RegisterFacts],
) -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "register.md").read_text(
        encoding="utf-8"
    )
    doc = json.loads((before_register[0] / "register.json").read_text(encoding="utf-8"))
    missing = [k for k in doc["earlier_releases"][0] if f"`{k}`" not in docs]
    assert not missing, f"register.json fields missing from docs/register.md: {missing}"


def test_when_a_chart_is_laid_out_then_bars_scale_and_long_labels_are_shortened() -> None:
    from pseudogate.register.charts import bar_chart

    chart = bar_chart([("A very long project title indeed", 20), ("small", FEW), ("none", 0)])
    long, small, none = chart.bars
    assert long.width > small.width > none.width == 0
    assert long.label.endswith("…") and len(long.label) <= 22
    assert small.value == FEW and chart.height == 16 + 3 * 32
