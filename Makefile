# The README's two commands: `make demo` (the main job) and `make test` (every test).
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
export TESTCONTAINERS_RYUK_DISABLED := true

.PHONY: setup demo test lint typecheck unit features robot bench clean

setup:
	ci/setup.sh

demo: setup
	$(BIN)/tinymlaas demo

# Everything: lint and types, unit tests and scenarios (on SQLite, and the store, API and
# scenarios again on a PostgreSQL server the tests start), Robot suites.
test: setup lint typecheck
	$(BIN)/pytest
	$(BIN)/pytest steps --database postgres --ignore=steps/test_cto.py -q
	$(BIN)/robot --outputdir var/robot tests/robot

# The quick lane for an edit-test loop: no apt, no Docker engine, no images, no emulators.
unit: lint typecheck
	$(BIN)/pytest tests -q -m "not docker and not qemu and not renode and not slow and not web"

robot: setup
	$(BIN)/robot --outputdir var/robot tests/robot

lint:
	$(BIN)/ruff check .

typecheck:
	$(BIN)/mypy

bench: setup
	$(BIN)/python benchmarks/run.py --json var/bench.json

clean:
	rm -rf var/images/contexts .pytest_cache
