# One-command entry points: `make serve` runs Airlock, `make test` runs the test-suite,
# `make bench` runs the benchmarks (`make bench BENCH_ARGS=--quick` for a short run).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: serve test lint bench wrk chromium install install-test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(VENV)/.installed $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

serve: install
	$(BIN)/airlock serve --demo

# wrk (Debian's package) drives the benchmarks; the test-suite's smoke test runs them briefly.
wrk:
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)

# Debian's Chromium runs the dashboard's browser tests (Playwright drives it; it never downloads a browser).
chromium:
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)

test: install-test wrk chromium
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/pytest

lint: install-test
	$(BIN)/ruff check .
	$(BIN)/lint-imports

BENCH_ARGS ?=
bench: install-test wrk
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .airlock .pytest_cache .ruff_cache
