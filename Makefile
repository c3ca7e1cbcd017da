# pseudogate: `make demo` and `make test` each do all set-up on a machine with Python 3.11+ and make.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
BUF    := node_modules/.bin/buf

.PHONY: demo test lint proto bench clean browser register-screenshots

$(STAMP): pyproject.toml setup.py src/pseudogate/core/_fastmac.c src/pseudogate/linkage/_kernels.c
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# buf (proto lint) comes from the npm package @bufbuild/buf; skipped where npm is absent.
$(BUF): package.json
	@if command -v npm >/dev/null 2>&1; then npm install --no-audit --no-fund --silent && touch $(BUF); \
	else echo "npm not found: buf lint will be skipped"; fi

demo: $(STAMP)
	$(VENV)/bin/pseudogate demo
	$(VENV)/bin/pseudogate register build --data-dir demo-output/data --out demo-output/register
	@echo "open the demo's public register in a browser: file://$(CURDIR)/demo-output/register/index.html"

# Screenshots of every page of the demo's register at desktop and phone width (for the docs;
# not test fixtures): demo-output/register-screenshots/.
register-screenshots: demo browser
	$(PY) tools/register_screenshots.py demo-output/register demo-output/register-screenshots

test: $(STAMP) $(BUF) browser
	$(PY) -m pytest -q

# The register's browser tests (tests/register/test_browser.py) drive Debian's chromium through
# chromium-driver; installed here when missing and possible (root with apt-get), otherwise
# those tests skip and say how to install them. Nothing is downloaded at test time.
browser:
	@if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing chromium and chromium-driver for the browser tests"; \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; } \
		|| echo "could not install chromium/chromium-driver with apt-get: browser tests will skip"; \
	else echo "chromium/chromedriver not found and cannot install them here: browser tests will skip" \
		"(install with: sudo apt-get install chromium chromium-driver)"; fi

# ruff, mypy --strict (configured in pyproject.toml: src/pseudogate, generated code excluded),
# and buf lint of the protos where buf could be installed.
lint: $(STAMP) $(BUF)
	$(VENV)/bin/ruff check src tests benchmarks tools
	$(PY) -m mypy
	@if [ -x $(BUF) ]; then cd proto && ../$(BUF) lint; \
	else echo "buf not installed (npm not found): proto lint skipped"; fi

proto: $(STAMP)
	$(PY) tools/gen_proto.py

bench: $(STAMP)
	$(PY) -m benchmarks

clean:
	rm -rf $(VENV) node_modules .pytest_cache .hypothesis .mypy_cache .ruff_cache
