# dlnotes: one virtual environment, created and kept current by every target that needs it.
#
#   make serve   set up, then serve the site on http://127.0.0.1:8000
#   make test    set up, then run the whole suite (unit tests, docs blocks, site build, browser test)
#   make build   set up, then write the static site to site/
#   make bench   set up, then run every benchmark (rewrites docs/*/results/*.json)

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1:8000

.PHONY: setup serve test build bench clean

setup: $(STAMP)

# Reinstalls only when the project's requirements change (or .venv is missing), so a
# current setup costs a few milliseconds.
$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "dlnotes needs Python 3.10 or newer, found " + sys.version.split()[0])'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

serve: $(STAMP)
	$(BIN)/mkdocs serve --dev-addr $(HOST)

build: $(STAMP)
	$(BIN)/mkdocs build --strict

test: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	@set -e; for script in benchmarks/[!_]*.py; do echo "== $$script"; $(BIN)/python $$script; done

clean:
	rm -rf site .artifacts .pytest_cache .hypothesis .cache
