"""The register in headless Chromium (Debian's chromium and chromium-driver, via selenium):
every page loads without console errors, links resolve, Verify says valid for real manifests
and the checkpoint and not valid after one byte changes, and axe-core finds no serious or
critical violation. Nothing is downloaded at run time; without the browser these tests skip
with a message saying how to install it (``make test`` installs it where it can)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from tests.register.gateway_run import GatewayRun

ROOT = Path(__file__).resolve().parents[2]
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
INSTALL = (
    "browser tests need Debian's chromium and chromium-driver and the Python package selenium: "
    "apt-get install chromium chromium-driver (make test does it when run as root), "
    "pip install -e '.[dev]'"
)
PAGES = ("index.html", "providers.html", "projects.html", "releases.html", "keys.html",
         "projects/frailty-study.html", "projects/housing-study.html")

webdriver = pytest.importorskip("selenium.webdriver", reason=INSTALL)


def _binaries() -> tuple[str, str]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not browser or not driver:
        pytest.skip(INSTALL)
    return browser, driver


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    from selenium.webdriver.chrome.service import Service

    browser, chromedriver = _binaries()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1200,900"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    chrome = webdriver.Chrome(options=options, service=Service(chromedriver))
    try:
        yield chrome
    finally:
        chrome.quit()


def _open(driver: Any, site: Path, page: str) -> None:
    driver.get((site / page).as_uri())
    driver.get_log("browser")  # start each page with an empty console


def _errors(driver: Any) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


@pytest.mark.parametrize("page", PAGES)
def test_when_a_page_is_opened_then_it_loads_without_console_errors(
    driver: Any, site: Path, page: str
) -> None:
    driver.get((site / page).as_uri())
    assert driver.execute_script("return document.documentElement.lang") == "en"
    assert driver.execute_script("return document.querySelectorAll('h1').length") == 1
    assert driver.execute_script("return !!document.querySelector('main#main-content')")
    assert driver.execute_script(
        "return document.body.classList.contains('govuk-frontend-supported')"
    )
    assert _errors(driver) == []


@pytest.mark.parametrize("page", PAGES)
def test_when_links_are_followed_then_each_resolves_to_a_file_and_fragment(
    driver: Any, site: Path, page: str
) -> None:
    _open(driver, site, page)
    hrefs = driver.execute_script(
        "return Array.from(document.querySelectorAll('a[href], link[href], script[src]'))"
        ".map(e => e.href || e.src)"
    )
    assert hrefs
    for href in hrefs:
        parts = urlsplit(href)
        assert parts.scheme == "file", href
        target = Path(unquote(parts.path))
        assert target.is_file(), f"{page}: {href} does not resolve"
        assert site in target.parents, href
        if parts.fragment and target.suffix == ".html":
            text = target.read_text(encoding="utf-8")
            assert f'id="{parts.fragment}"' in text, href


def _verdicts(driver: Any) -> list[str]:
    driver.execute_script("document.querySelectorAll('.register-verify__result')"
                          ".forEach(r => r.removeAttribute('data-verdict'))")
    buttons = driver.find_elements("css selector", ".register-verify__button")
    for button in buttons:
        driver.execute_script("arguments[0].click()", button)
    script = (
        "const done = arguments[arguments.length - 1];"
        "const poll = () => { const r = Array.from(document.querySelectorAll("
        "'.register-verify__result')); if (r.every(e => e.dataset.verdict)) "
        "done(r.map(e => e.dataset.verdict + ': ' + e.textContent)); else setTimeout(poll, 50); };"
        "poll();"
    )
    driver.set_script_timeout(20)
    return list(driver.execute_async_script(script))


def test_when_verify_is_pressed_then_every_real_manifest_is_valid(
    driver: Any, site: Path, run: GatewayRun
) -> None:
    _open(driver, site, "releases.html")
    verdicts = _verdicts(driver)
    assert len(verdicts) == len(run.manifests)
    assert all(v.startswith("valid: Valid: this manifest was signed") for v in verdicts), verdicts
    assert _errors(driver) == []


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (("\"rows\":", "\"rows\":1"), "the signature does not match the contents"),
        (("\"k_achieved\":", "\"k_achieved\":9"), "the signature does not match the contents"),
        (("\"signing\":\"example-sign\"", "\"signing\":\"example-sigm\""),
         "names signing key example-sigm, which this register does not publish"),
        (("\"signature\":\"", "\"signature\":\"A"), "its signature is not base64"),
        (("{", "["), "it is not valid JSON"),
    ],
)
def test_when_one_byte_of_a_manifest_changes_then_verify_says_not_valid_and_why(
    driver: Any, site: Path, change: tuple[str, str], reason: str
) -> None:
    _open(driver, site, "releases.html")
    old, new = change
    driver.execute_script(
        "document.querySelectorAll('.register-verify .register-json').forEach(p => "
        "{ p.textContent = p.textContent.replace(arguments[0], arguments[1]); });", old, new
    )
    verdicts = _verdicts(driver)
    assert verdicts and all(v.startswith("invalid: Not valid: ") for v in verdicts), verdicts
    assert all(reason in v for v in verdicts), verdicts


def test_when_verify_is_pressed_then_the_latest_checkpoint_is_valid_and_a_changed_one_not(
    driver: Any, site: Path
) -> None:
    _open(driver, site, "keys.html")
    assert _verdicts(driver) == [(
        "valid: Valid: this checkpoint was signed by the gateway with key example-sign and "
        "has not been changed since."
    )]
    checkpoint = json.loads((site / "checkpoint.json").read_text(encoding="utf-8"))
    driver.execute_script(
        "const p = document.querySelector('.register-verify .register-json');"
        "p.textContent = p.textContent.replace(arguments[0], arguments[1]);",
        f'"seq":{checkpoint["seq"]}', f'"seq":{checkpoint["seq"] + 1}',
    )
    [verdict] = _verdicts(driver)
    assert verdict.startswith("invalid: Not valid: the signature does not match"), verdict


@pytest.mark.parametrize(
    "value",
    [0.0, -0.0, 1.0, 0.1, 0.2999150769510235, 1e-5, 0.0001, 1e16, 1e15, 123456789.125,
     1.5e-7, 2.5e300, 5e-324, 1 / 3, 100.0, 0.00012345],
)
def test_when_the_browser_writes_a_float_then_it_writes_it_as_python_does(
    driver: Any, site: Path, value: float
) -> None:
    """The manifest's ``loss`` is a float: the signed bytes hold Python's repr of it."""
    _open(driver, site, "releases.html")
    written = driver.execute_script(
        "return window.pseudogateRegister.pythonFloat(arguments[0])", value
    )
    assert written == json.dumps(value)
    text = json.dumps({"b": [value, 3, "é\n\"x"], "a": None}, ensure_ascii=False)
    canonical = driver.execute_script("return window.pseudogateRegister.canonical(arguments[0])",
                                      text)
    assert canonical == json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"),
                                   ensure_ascii=False)


def _axe(driver: Any) -> list[dict[str, Any]]:
    """The serious and critical violations axe-core finds on the open page."""
    driver.execute_script(AXE.read_text(encoding="utf-8"))
    driver.set_script_timeout(60)
    result = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {resultTypes: ['violations']})"
        ".then(r => done(r.violations.map(v => ({id: v.id, impact: v.impact, "
        "nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}))))"
        ".catch(e => done([{id: 'axe failed', impact: 'critical', nodes: [String(e)]}]));"
    )
    return [v for v in result if v["impact"] in ("serious", "critical")]


@pytest.mark.parametrize("page", PAGES)
def test_when_axe_core_checks_a_page_then_nothing_serious_or_critical_is_found(
    driver: Any, site: Path, page: str
) -> None:
    if not AXE.is_file():
        pytest.skip("axe-core is missing: run npm install --no-audit --no-fund (make test does)")
    _open(driver, site, page)
    serious = _axe(driver)
    assert not serious, f"{page}: {serious}"


@pytest.mark.parametrize("width", [1200, 360])
def test_when_the_window_is_desktop_or_phone_sized_then_nothing_overflows_sideways(
    driver: Any, site: Path, width: int
) -> None:
    driver.set_window_size(width, 900)
    try:
        for page in PAGES:
            _open(driver, site, page)
            overflow = driver.execute_script(
                "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, f"{page} at {width}px scrolls sideways by {overflow}px"
    finally:
        driver.set_window_size(1200, 900)


def test_when_a_release_predates_kept_manifests_then_it_is_listed_without_a_verify_button(
    driver: Any, before_register: tuple[Path, Any]
) -> None:
    site, facts = before_register
    (earlier,) = facts.earlier_releases
    _open(driver, site, "releases.html")
    row = driver.find_element("id", earlier.anchor)
    assert "manifest not kept (released before the register)" in row.text
    assert "frailty-study" in row.text
    assert not row.find_elements("css selector", "button")
    section = driver.find_element("css selector", ".register-earlier-releases")
    assert not section.find_elements("css selector", "button, .register-verify")
    verdicts = _verdicts(driver)  # the kept manifests still verify
    assert len(verdicts) == 2 and all(v.startswith("valid: Valid") for v in verdicts)
    assert _errors(driver) == []
    if AXE.is_file():
        assert _axe(driver) == []
    driver.set_window_size(360, 900)
    try:
        _open(driver, site, "releases.html")
        assert driver.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
        ) <= 0
    finally:
        driver.set_window_size(1200, 900)
    _open(driver, site, "projects/frailty-study.html")
    link = driver.find_element("css selector", f'a[href$="#{earlier.anchor}"]')
    driver.execute_script("arguments[0].click()", link)
    assert driver.current_url.endswith(f"releases.html#{earlier.anchor}")
    assert _errors(driver) == []


def _check_file(driver: Any, path: Path) -> str:
    """Choose ``path`` in "Check a manifest you received" and return verdict: message."""
    driver.execute_script(
        "const r = document.querySelector('.register-check-file__result');"
        "r.removeAttribute('data-verdict'); r.textContent = '';"
    )
    field = driver.find_element("id", "check-manifest-file")
    driver.execute_script("arguments[0].value = ''", field)
    field.send_keys(str(path))
    driver.set_script_timeout(20)
    return str(driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "const r = document.querySelector('.register-check-file__result');"
        "const poll = () => r.dataset.verdict ? done(r.dataset.verdict + ': ' + r.textContent)"
        " : setTimeout(poll, 50); poll();"
    ))


def test_when_a_received_manifest_file_is_chosen_then_it_is_checked_in_the_browser(
    driver: Any, site: Path, run: GatewayRun, tmp_path: Path
) -> None:
    _open(driver, site, "releases.html")
    received = tmp_path / "received.manifest.json"
    received.write_text(run.manifests[1], encoding="utf-8")
    verdict = _check_file(driver, received)
    assert verdict.startswith("valid: Valid: this manifest was signed by the gateway"), verdict
    assert "It is the manifest of release 2 below." in verdict

    indented = tmp_path / "indented.manifest.json"  # as make demo saves it
    indented.write_text(json.dumps(json.loads(run.manifests[0]), indent=2), encoding="utf-8")
    verdict = _check_file(driver, indented)
    assert verdict.startswith("valid: Valid"), verdict
    same = [i + 1 for i, m in enumerate(run.manifests) if m == run.manifests[0]]
    if len(same) == 1:
        assert "It is the manifest of release 1 below." in verdict
    else:  # the same extract twice within a second: byte-identical manifests
        assert f"It is the manifest of releases {', '.join(map(str, same[:-1]))} and {same[-1]}" \
            in verdict

    doc = json.loads(run.manifests[0])
    doc["rows"] += 1
    tampered = tmp_path / "tampered.manifest.json"
    tampered.write_text(json.dumps(doc, sort_keys=True, separators=(",", ":")), encoding="utf-8")
    verdict = _check_file(driver, tampered)
    assert verdict.startswith("invalid: Not valid: the signature does not match the contents"), \
        verdict

    one_byte = tmp_path / "one-byte.manifest.json"
    text = run.manifests[2]
    at = text.index('"project":"') + len('"project":"')
    one_byte.write_text(text[:at] + ("X" if text[at] != "X" else "Y") + text[at + 1 :],
                        encoding="utf-8")
    assert _check_file(driver, one_byte).startswith("invalid: Not valid: the signature")

    not_json = tmp_path / "extract.csv"
    not_json.write_text("person,gp_diagnoses.diagnosis\n", encoding="utf-8")
    verdict = _check_file(driver, not_json)
    assert verdict.startswith("invalid: Not valid: it is not valid JSON"), verdict
    assert _errors(driver) == []
