# The README's two commands: `make demo` (the main job) and `make test` (every test).
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
export TESTCONTAINERS_RYUK_DISABLED := true

.PHONY: setup demo test lint unit features robot bench clean

setup:
	ci/setup.sh

demo: setup
	$(BIN)/tinymlaas demo

test: setup lint
	$(BIN)/pytest
	$(BIN)/robot --outputdir var/robot tests/robot

robot: setup
	$(BIN)/robot --outputdir var/robot tests/robot

lint:
	$(BIN)/ruff check .

bench: setup
	$(BIN)/python benchmarks/run.py --json var/bench.json

clean:
	rm -rf var/images/contexts .pytest_cache
