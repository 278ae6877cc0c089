# Two commands do everything: `make run` and `make test`. Both install first. `make check` is the gate
# (mypy --strict and ruff over storeengine/ and bench/, ruff over tests/) that CI runs before the tests.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test check install bench clean screenshots

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/storeengine serve $(ARGS)

test: $(STAMP)
	$(BIN)/pytest -q $(ARGS)

check: $(STAMP)
	$(BIN)/mypy
	$(BIN)/ruff check storeengine bench tests
# The README's console pictures, taken by the browser test itself (needs Debian's chromium).
screenshots: $(STAMP)
	SCREENSHOTS=docs $(BIN)/pytest -q tests/test_console_browser.py

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
