"""Copy GOV.UK Frontend's compiled CSS, JS and fonts into the Python package (for the register).

    npm install --no-audit --no-fund && python tools/vendor_govuk_frontend.py

The copies live in ``src/pseudogate/register/static/govuk/`` and are shipped as package data, so
the register never fetches anything from a CDN. The stylesheet's absolute ``/assets/`` URLs are
made relative, so that a built site works from ``file://`` and from any folder of a web server.
Run again after upgrading ``govuk-frontend`` in package.json, and commit the result.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "node_modules" / "govuk-frontend"
TARGET = ROOT / "src" / "pseudogate" / "register" / "static" / "govuk"
FILES = {
    "dist/govuk/govuk-frontend.min.css": "govuk-frontend.min.css",
    "dist/govuk/all.bundle.js": "govuk-frontend.bundle.js",
    "dist/govuk/assets/images/favicon.ico": "assets/images/favicon.ico",
    "dist/govuk/assets/images/favicon.svg": "assets/images/favicon.svg",
}


def main() -> int:
    if not SOURCE.is_dir():
        print("node_modules/govuk-frontend is missing: run npm install first", file=sys.stderr)
        return 1
    version = json.loads((SOURCE / "package.json").read_text(encoding="utf-8"))["version"]
    if TARGET.exists():
        shutil.rmtree(TARGET)
    (TARGET / "assets" / "fonts").mkdir(parents=True)
    (TARGET / "assets" / "images").mkdir(parents=True)
    for source, target in FILES.items():
        shutil.copyfile(SOURCE / source, TARGET / target)
    for font in sorted((SOURCE / "dist/govuk/assets/fonts").iterdir()):
        shutil.copyfile(font, TARGET / "assets" / "fonts" / font.name)
    css = TARGET / "govuk-frontend.min.css"
    css.write_text(
        css.read_text(encoding="utf-8").replace("url(/assets/", "url(assets/"), encoding="utf-8"
    )
    (TARGET / "VERSION").write_text(f"govuk-frontend {version}\n", encoding="utf-8")
    (TARGET / "LICENCE.txt").write_text(
        f"GOV.UK Frontend {version}: MIT License, Copyright (c) Crown copyright (Government "
        "Digital Service).\nCopied from the npm package govuk-frontend by "
        "tools/vendor_govuk_frontend.py.\n",
        encoding="utf-8",
    )
    print(f"copied govuk-frontend {version} into {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
