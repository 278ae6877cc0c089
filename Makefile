# Two commands do everything: `make run` and `make test`. Both install first. `make check` is the gate
# (mypy --strict and ruff over storeengine/ and bench/, ruff over tests/, and the import rules of
# pyproject.toml checked by import-linter) that CI runs before the tests.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# The MongoDB-wire lane (tests marked `wire`, and `make bench`) talks to mongoeco, a pure-Python
# MongoDB-wire server that needs Python >= 3.13, in a virtualenv of its own.
WIRE_VENV  ?= .venv-wire
export WIRE_VENV  # tests/wire/conftest.py and bench/_wire.py look there
WIRE_STAMP := $(WIRE_VENV)/.installed
WIRE_REQS  := tests/wire/requirements.txt

.PHONY: run test check install bench bench-peers clean wire-env screenshots

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

$(WIRE_STAMP): $(WIRE_REQS)
	@py=$$(tests/wire/find-python) || { \
	  if [ "$$STORE_REQUIRE_WIRE" = 1 ]; then echo "STORE_REQUIRE_WIRE=1: no Python >= 3.13 for the MongoDB-wire lane" >&2; exit 1; fi; \
	  echo "!!! ============================================================================ !!!"; \
	  echo "!!! No Python >= 3.13 on PATH or in pyenv: the MongoDB-wire lane is NOT available  !!!"; \
	  echo "!!! (tests marked 'wire' will be skipped; STORE_REQUIRE_WIRE=1 makes that an error) !!!"; \
	  echo "!!! ============================================================================ !!!"; \
	  exit 0; }; \
	echo "wire lane: building $(WIRE_VENV) with $$py"; \
	rm -rf $(WIRE_VENV) && $$py -m venv $(WIRE_VENV) && \
	$(WIRE_VENV)/bin/pip install --quiet -r $(WIRE_REQS) && touch $(WIRE_STAMP)

wire-env: $(WIRE_STAMP)

# The embedded database keeps its data in ./data between runs (STORE_DATA_DIR; git ignores it).
run: $(STAMP)
	$(BIN)/storeengine serve $(ARGS)

test: $(STAMP) wire-env
	$(BIN)/pytest -q $(ARGS)

check: $(STAMP)
	$(BIN)/mypy
	$(BIN)/ruff check storeengine bench tests
	$(BIN)/lint-imports --no-cache

# The README's console pictures, taken by the browser test itself (needs Debian's chromium).
screenshots: $(STAMP)
	SCREENSHOTS=docs $(BIN)/pytest -q tests/http/test_console_browser.py tests/http/test_console_aggregate_browser.py

bench: $(STAMP) wire-env
	$(BIN)/python bench/run_all.py

# Only the peer benchmarks (issues 21 and 26): storeengine next to PocketBase, and next to Parse Server,
# Eve and the floor on jongodb, then what jongodb itself spends on a list. Each peer installs itself
# on first use into bench/.peers/ (npm, pip); the load tool is Debian's wrk.
bench-peers: $(STAMP)
	@command -v wrk >/dev/null || { echo "bench-peers needs wrk: apt-get install -y wrk" >&2; exit 1; }
	$(BIN)/python bench/vs_pocketbase.py
	$(BIN)/python bench/vs_parse.py
	$(BIN)/python bench/jongodb_costs.py

clean:
	rm -rf $(VENV) $(WIRE_VENV) .pytest_cache build *.egg-info
