# Reynolds — developer entry points. `make simulate` and `make test` work on a fresh clone.
#
# Two environments, each installed from a lock with hashes (uv, bootstrapped into .venv by pip from
# requirements-uv.txt, installs them; Azure's remote build installs requirements.txt with pip):
#   .venv        the app's runtime set (requirements.txt, what Azure deploys) — all `make simulate` needs;
#                `make test` adds the dev tools (requirements-dev.txt, the same runtime pins plus pytest, ruff,
#                mypy) into it.
#   .venv-tools  checkov (requirements-checkov.txt), apart, so its pins never move the app's versions.
# Install output goes to stderr: `make simulate > out.jsonl` captures only the JSON lines.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
RUN_STAMP := $(VENV)/.runtime-installed
DEV_STAMP := $(VENV)/.dev-installed
TOOLS := .venv-tools
CHECKOV := $(TOOLS)/bin/checkov
CHECKOV_STAMP := $(TOOLS)/.installed
NODE_STAMP := node_modules/.installed
UV := $(VENV)/bin/uv
UV_INSTALL = $(UV) pip install --require-hashes
INPUT ?= samples/arena/app-bot-ping-pong.json
OUT ?= chains.html

.PHONY: help simulate test lint typecheck unit arena bench dev explore lock chromium check-func clean teams-app

help:
	@echo "make simulate  run the bundled sample deliveries through Reynolds (in-process, no Azure)"
	@echo "make test      lint, type-check and run every test (starts its own local Cosmos DB server)"
	@echo "make explore   draw the chains of a run as a page: INPUT=<arena scenario or simulate file> OUT=chains.html"
	@echo "make arena     run the loop arena's bundled scenarios"
	@echo "make whatif    replay recorded decisions with other settings: FROM=<journal> (default: record INPUT) SET='LOOP_MAX_AUTOMATED_DEPTH=2'"
	@echo "make bench     run the benchmarks and write docs/benchmarks.md"
	@echo "make teams-app write the Teams app package for the deployed bot: dist/reynolds-teams-app.zip (BOT_ID=<id> or azd's)"
	@echo "make dev       start Azurite + local Cosmos DB and 'func start' (needs Functions Core Tools)"
	@echo "make lock      re-resolve requirements*.in into the hashed locks requirements*.txt"

$(RUN_STAMP): requirements.txt requirements-uv.txt
	@echo "==> [1/3] creating $(VENV) with $$($(PYTHON) --version 2>&1)" >&2
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "==> [2/3] installing the installer, uv (requirements-uv.txt, hashes checked)" >&2
	@$(PY) -m pip install --require-hashes --progress-bar off --disable-pip-version-check -r requirements-uv.txt >&2
	@echo "==> [3/3] installing the app's locked runtime packages (requirements.txt, hashes checked)" >&2
	@$(UV_INSTALL) --python $(PY) -r requirements.txt >&2
	@touch $@
	@echo "==> runtime ready; the dev tools come with 'make test'. Running the simulation:" >&2

$(DEV_STAMP): $(RUN_STAMP) requirements-dev.txt
	@echo "==> installing the dev tools (requirements-dev.txt: pytest, ruff, mypy; runtime pins unchanged)" >&2
	@$(UV_INSTALL) --python $(PY) -r requirements-dev.txt >&2
	@touch $@

$(CHECKOV_STAMP): $(RUN_STAMP) requirements-checkov.txt
	@echo "==> installing checkov into its own venv $(TOOLS) (requirements-checkov.txt)" >&2
	@test -x $(TOOLS)/bin/python || $(PYTHON) -m venv $(TOOLS)
	@$(UV_INSTALL) --python $(TOOLS)/bin/python -r requirements-checkov.txt >&2
	@touch $@

$(NODE_STAMP): package.json package-lock.json
	@echo "==> npm ci (local Cosmos DB server, Azurite)" >&2
	@npm ci --no-audit --no-fund --loglevel=error >&2
	@touch $@

chromium:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || command -v google-chrome >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "==> installing chromium with apt (the chain explorer's browser test)" >&2; \
	    apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >&2; \
	  else echo "make test needs headless Chromium: sudo apt-get install chromium" >&2; exit 1; fi; }

simulate: $(RUN_STAMP)
	@$(PY) -m tools.simulate samples/deliveries.jsonl samples/teams-servicebus.jsonl samples/task-fanout.json

explore: $(RUN_STAMP)
	@$(PY) -m tools.explore --out $(OUT) $(if $(CHAIN),--chain $(CHAIN)) $(INPUT)

lint: $(DEV_STAMP)
	$(PY) -m ruff check .

typecheck: $(DEV_STAMP)
	$(PY) -m mypy

unit: $(DEV_STAMP) $(CHECKOV_STAMP) $(NODE_STAMP) chromium
	CHECKOV=$(CURDIR)/$(CHECKOV) $(PY) -m pytest -q

test: lint typecheck unit

# The Teams app package (manifest + generated icons) for the deployed bot; the bot id comes from BOT_ID= or from
# `azd env get-values` (output BOT_ID). Validated against the manifest schema npm ci installs (@microsoft/app-manifest)
# with jsonschema from the tools venv.
TEAMS_APP ?= dist/reynolds-teams-app.zip
teams-app: $(RUN_STAMP) $(NODE_STAMP) $(CHECKOV_STAMP)
	@BOT_ID="$(BOT_ID)" $(PY) -m tools.teams_app --out $(TEAMS_APP)
	@$(TOOLS)/bin/python -m tools.teams_app --check $(TEAMS_APP)

arena: $(RUN_STAMP)
	@$(PY) -m tools.arena samples/arena/*.json

.PHONY: whatif
whatif: $(RUN_STAMP)
	@$(if $(FROM),,$(PY) -m tools.whatif --record-arena $(INPUT) --journal whatif.jsonl &&) \
	$(PY) -m tools.whatif --from $(or $(FROM),whatif.jsonl) $(foreach s,$(SET),--set $(s))

bench: $(DEV_STAMP) $(NODE_STAMP)
	$(PY) -m tools.bench $(if $(WRITE),--write)

lock: $(RUN_STAMP)
	$(UV) pip compile requirements-uv.in --generate-hashes --python-version 3.11 --custom-compile-command "make lock" -q -o requirements-uv.txt
	$(UV) pip compile requirements.in --generate-hashes --no-strip-extras --python-version 3.11 --custom-compile-command "make lock" -q -o requirements.txt
	$(PY) -m tools.lock_pip_compat requirements.txt
	$(UV) pip compile requirements-dev.in -c requirements.txt --generate-hashes --no-strip-extras --python-version 3.11 --custom-compile-command "make lock" -q -o requirements-dev.txt
	$(UV) pip compile requirements-checkov.in --generate-hashes --no-strip-extras --python-version 3.11 --custom-compile-command "make lock" -q -o requirements-checkov.txt

check-func:
	@command -v func >/dev/null || { echo "Functions Core Tools ('func') is not installed: see https://learn.microsoft.com/azure/azure-functions/functions-run-local (npm i -g azure-functions-core-tools@4, or your OS package). Nothing was installed." >&2; exit 1; }

# check-func comes first and the installs after it: a missing `func` is reported before any download.
dev: check-func
	@$(MAKE) --no-print-directory $(RUN_STAMP) $(NODE_STAMP)
	@test -f local.settings.json || cp local.settings.json.example local.settings.json
	$(PY) -m tools.devservers & echo $$! > .devservers.pid; \
	trap 'kill $$(cat .devservers.pid) 2>/dev/null; rm -f .devservers.pid' EXIT; \
	. $(VENV)/bin/activate && func start

clean:
	rm -rf $(VENV) $(TOOLS) node_modules .pytest_cache .mypy_cache .ruff_cache
