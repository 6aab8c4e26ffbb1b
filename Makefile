# Reynolds — developer entry points. `make simulate` and `make test` work on a fresh clone.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed

.PHONY: help simulate test lint typecheck unit arena bench dev clean

help:
	@echo "make simulate  run the bundled sample deliveries through Reynolds (in-process, no Azure)"
	@echo "make test      lint, type-check and run every test (starts its own local Cosmos DB server)"
	@echo "make arena     run the loop arena's bundled scenarios"
	@echo "make bench     run the benchmarks and write docs/benchmarks.md"
	@echo "make dev       start Azurite + local Cosmos DB and 'func start' (needs Functions Core Tools)"

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

simulate: $(STAMP)
	$(PY) -m tools.simulate samples/deliveries.jsonl samples/teams-servicebus.jsonl samples/task-fanout.json

lint: $(STAMP)
	$(PY) -m ruff check .

typecheck: $(STAMP)
	$(PY) -m mypy

unit: $(STAMP) $(NODE_STAMP)
	$(PY) -m pytest -q

test: lint typecheck unit

arena: $(STAMP)
	$(PY) -m tools.arena samples/arena/*.json

bench: $(STAMP) $(NODE_STAMP)
	$(PY) -m tools.bench

dev: $(STAMP) $(NODE_STAMP)
	@test -f local.settings.json || cp local.settings.json.example local.settings.json
	@command -v func >/dev/null || { echo "Functions Core Tools ('func') is not installed: see https://learn.microsoft.com/azure/azure-functions/functions-run-local (npm i -g azure-functions-core-tools@4, or your OS package)"; exit 1; }
	$(PY) -m tools.devservers & echo $$! > .devservers.pid; \
	trap 'kill $$(cat .devservers.pid) 2>/dev/null; rm -f .devservers.pid' EXIT; \
	. $(VENV)/bin/activate && func start

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache
