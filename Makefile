# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint imports typecheck pytest services clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e ".[server]"
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e ".[server,test]"
	touch $@ $(VENV)/.installed

run: $(VENV)/.installed
	$(BIN)/pms up $(ARGS)

services:
	bash scripts/test-services.sh

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .

# The architecture contracts (pyproject.toml [tool.importlinter]) and a check for import circles.
imports: $(VENV)/.installed-test
	$(BIN)/lint-imports --no-cache
	$(BIN)/python scripts/import_cycles.py

typecheck: $(VENV)/.installed-test
	$(BIN)/mypy

# Slow scale runs (marker `slow`, e.g. `pms up` at the embedded broker's limit) are left out of a
# developer's `make test`; CI (CI=true) runs them too.
PYTEST_ARGS ?= $(if $(CI),-m "slow or not slow",)
# One pytest worker per core (pytest-xdist); an idle worker takes tests queued for the other (worksteal). Tests
# on the shared Mosquitto take turns (tests/conftest.py). PYTEST_WORKERS=0 runs everything in one process.
PYTEST_WORKERS ?= 2

pytest: $(VENV)/.installed-test services
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist worksteal --durations=30 $(PYTEST_ARGS)

test: $(VENV)/.installed-test services lint imports typecheck pytest

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
