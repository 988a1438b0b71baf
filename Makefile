# Card Checkout: every command a user or CI runs is a target here.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Where `make run` (and `make demo`'s curl commands) serve: make run PORT=8123
HOST ?= 127.0.0.1
PORT ?= 8000
export PYTHONDONTWRITEBYTECODE := 1

.DEFAULT_GOAL := help
.PHONY: help install install-runtime run demo migrate bench test test-unit test-integration lint fmt clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-18s %s\n", $$1, $$2}'

# The service and its runtime dependencies only: what serving needs.
$(BIN)/.runtime: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

# Then the test and lint tools on top.
$(BIN)/.installed: $(BIN)/.runtime
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install-runtime: $(BIN)/.runtime ## Create .venv with the service's runtime dependencies only

install: $(BIN)/.installed ## Create .venv and install the project with its dev tools

run: install-runtime ## Serve on the embedded defaults (SQLite file, sandbox) after a demo; PORT=8000
	$(BIN)/card-checkout migrate
	$(BIN)/card-checkout demo --host $(HOST) --port $(PORT)
	$(BIN)/card-checkout serve --host $(HOST) --port $(PORT)

migrate: install-runtime ## Bring the database (DATABASE_URL, default a SQLite file) to the newest schema
	$(BIN)/card-checkout migrate

demo: install-runtime ## Set up a demo environment and print curl commands for it (PORT=8000)
	$(BIN)/card-checkout demo --host $(HOST) --port $(PORT)

test: install lint test-unit test-integration ## Set up and run every check and test

test-unit: install ## Unit tests: no network, no database
	$(BIN)/pytest tests/unit -q

test-integration: install ## Integration tests: real processes, files, databases
	$(BIN)/pytest tests/integration -q

lint: install ## ruff, mypy --strict, import-linter
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: install ## Measure throughput, latency, commits and growth; writes bench/results/
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python -m bench.bench

fmt: install ## Format and fix what ruff can
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

clean: ## Remove the virtual environment and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis build src/*.egg-info
