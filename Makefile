# The README's two commands: `make demo` (the main job) and `make test` (every test).
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
export TESTCONTAINERS_RYUK_DISABLED := true

.PHONY: setup demo lab test lint typecheck unit features robot bench clean

setup:
	ci/setup.sh

# On a terminal, the demo ends with its service and devices running for the browser (`make lab`)
# until Ctrl-C; elsewhere (CI, a pipe) it ends when the demo does.
demo: setup
	$(BIN)/tinymlaas demo
	@if [ -t 0 ] && [ -t 1 ] && [ -z "$$CI" ]; then $(BIN)/tinymlaas lab; \
	else echo "make demo: not on a terminal, so no lab: 'make lab' keeps a service with the demo's devices running"; fi

# The service with the demo's devices, for the browser: prints the URL and the admin's login.
lab: setup
	$(BIN)/tinymlaas lab

# Everything: lint and types, unit tests and scenarios (on SQLite, and the store, API and
# scenarios again on a PostgreSQL server the tests start), Robot suites. The first pass prints
# its 25 slowest tests. The PostgreSQL pass runs only scenarios whose service keeps its records
# in that database: test_qemu.py (emulated boards) and test_x86.py (builder and device
# containers, the compile CLI) start no service and open no database, so a second run of them
# would test nothing new; test_cto.py's dry-run always keeps its own SQLite file. The rollback
# scenarios (@reliability: images that crash, hang or are unsigned) differ from the FOTA
# scenarios this pass keeps only in what the device and its boot ROM or bridge do: the service
# records their failed deployment as it records the corrupted image's, which this pass runs.
test: setup lint typecheck
	$(BIN)/pytest --durations=25
	$(BIN)/pytest steps --database postgres -q -m "not slow and not reliability" \
	  --ignore=steps/test_cto.py --ignore=steps/test_qemu.py --ignore=steps/test_x86.py
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
