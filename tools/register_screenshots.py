"""Screenshots of every page of a built register, at desktop and phone width, for the docs.

    python tools/register_screenshots.py SITE OUT

(``make register-screenshots`` builds the demo's register and runs this.) Uses Debian's
chromium and chromium-driver through selenium; nothing is downloaded.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

WIDTHS = {"desktop": 1280, "phone": 390}


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: register_screenshots.py SITE OUT", file=sys.stderr)
        return 2
    site, out = Path(argv[0]).resolve(), Path(argv[1])
    browser, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not browser or not driver_path:
        print("chromium and chromedriver are needed: apt-get install chromium chromium-driver",
              file=sys.stderr)
        return 1
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                     "--disable-dev-shm-usage"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(driver_path))
    out.mkdir(parents=True, exist_ok=True)
    pages = sorted(p.relative_to(site) for p in site.rglob("*.html") if "static" not in p.parts)
    try:
        for page in pages:
            for label, width in WIDTHS.items():
                driver.set_window_size(width, 900)
                driver.get((site / page).as_uri())
                height = driver.execute_script("return document.documentElement.scrollHeight")
                driver.set_window_size(width, min(int(height), 10_000))
                name = str(page.with_suffix("")).replace("/", "-")
                driver.save_screenshot(str(out / f"{name}-{label}.png"))
    finally:
        driver.quit()
    print(f"wrote {len(pages) * len(WIDTHS)} screenshots in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
