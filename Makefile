# pseudogate: `make demo` and `make test` each do all set-up on a machine with Python 3.11+ and make.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
BUF    := node_modules/.bin/buf

.PHONY: demo test lint proto bench clean

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

test: $(STAMP) $(BUF)
	$(PY) -m pytest -q

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
