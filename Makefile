# stock_assets — the two commands a newcomer needs are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STOCK_ASSETS_HOME ?= $(CURDIR)/.stock_assets
DAGSTER_HOME := $(STOCK_ASSETS_HOME)/dagster
DAGSTER_PORT ?= 3000
MLFLOW_PORT ?= 5000
# Every UI and server listens on loopback only, unless this says otherwise (then put a
# reverse proxy with authentication in front: docs/production.md, "Access").
STOCK_ASSETS_BIND_HOST ?= 127.0.0.1
export STOCK_ASSETS_HOME DAGSTER_HOME STOCK_ASSETS_BIND_HOST DAGSTER_PORT MLFLOW_PORT

STOCK_ASSETS_DAGSTER_YAML ?= dagster.yaml

.PHONY: help install demo test test-fast ui serve dashboard screenshot bench feed services services-stop workers workers-stop chaos lint docs clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# The stack installs from uv.lock, exactly as tested, in seconds; --locked stops if
# pyproject.toml changed since the lock (docs/testing.md, "Upgrading dependencies"). Bytecode is
# compiled up front because these machines set PYTHONDONTWRITEBYTECODE and `import mlflow` is
# 4x slower without it. --inexact keeps uv itself, which pip installed. An extra added later
# leaves the project as `install` installed it (--no-install-project).
UV_VERSION := 0.13.9
SYNC := $(BIN)/uv sync --quiet --locked --inexact --compile-bytecode --python $(BIN)/python
$(VENV)/.installed: pyproject.toml uv.lock | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(SYNC) --extra dev
	touch $@

install: $(VENV)/.installed  ## create .venv and install the project

# The embedded instance by default; deploy/dagster.yaml (PostgreSQL) in production. The instance
# in use is always the one STOCK_ASSETS_DAGSTER_YAML names: copied whenever the contents differ,
# not by date (after `make demo` the embedded copy is newer than deploy/dagster.yaml).
$(DAGSTER_HOME)/dagster.yaml: FORCE
	@mkdir -p $(DAGSTER_HOME)
	@cmp -s $(STOCK_ASSETS_DAGSTER_YAML) $@ || { cp $(STOCK_ASSETS_DAGSTER_YAML) $@ && \
	    echo "Dagster instance: $(STOCK_ASSETS_DAGSTER_YAML) copied to $@"; }
FORCE:

demo: install $(DAGSTER_HOME)/dagster.yaml  ## materialize every asset on the bundled sample, then summarise
	$(BIN)/stock-assets demo

# One pytest-xdist worker per core and one more: a third of the suite's time is tests waiting
# on a server, a sensor tick or a subprocess, and the extra worker fills the idle core. Tests
# are handed out one at a time in the order conftest.py sets (slowest first). The README's
# test-budget paragraph ("Test budget") sets how long this may take, and records the latest
# measurement.
TEST_WORKERS ?= $(shell echo $$(( $$(nproc) + 1 )))
test: install  ## run the whole test suite, services and browser included
	$(BIN)/pytest -n $(TEST_WORKERS) --dist load --maxschedchunk 1 --durations=10

test-fast: install  ## only the pure modules (no services, browser or slow tests), for quick loops
	$(BIN)/pytest -m "not services and not browser and not slow"

# The MLflow UI is the tracking server MLFLOW_TRACKING_URI names (production: `make services`
# runs it), else a server of our own over the store it names (the embedded one by default).
ui: install $(DAGSTER_HOME)/dagster.yaml  ## Dagster UI on :3000 beside the MLflow UI (MLFLOW_TRACKING_URI's server, else :5000)
	@tracking="$${MLFLOW_TRACKING_URI:-sqlite:///$(STOCK_ASSETS_HOME)/mlflow.db}"; mlflow_pid=; \
	case "$$tracking" in \
	    http://*|https://*) echo "MLflow UI: $$tracking (MLFLOW_TRACKING_URI)" ;; \
	    *) MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false $(BIN)/mlflow server \
	        --backend-store-uri "$$tracking" \
	        --default-artifact-root file://$(STOCK_ASSETS_HOME)/mlartifacts \
	        --host $(STOCK_ASSETS_BIND_HOST) --port $(MLFLOW_PORT) & mlflow_pid=$$! ;; \
	esac; \
	trap '[ -z "$$mlflow_pid" ] || kill $$mlflow_pid 2>/dev/null' EXIT INT TERM; \
	PATH=$(CURDIR)/$(BIN):$$PATH VIRTUAL_ENV=$(CURDIR)/$(VENV) \
	    DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS=true \
	    $(BIN)/dg dev -w workspace.yaml -h $(STOCK_ASSETS_BIND_HOST) -p $(DAGSTER_PORT)

serve: PORT ?= 5001
serve: install  ## MLflow scoring server on the champion at 127.0.0.1:$PORT (default 5001), following promotions
	$(BIN)/stock-assets serve --host $(STOCK_ASSETS_BIND_HOST) --port $(PORT)

dashboard: PORT ?= 8050
dashboard: install  ## predictions dashboard at 127.0.0.1:$PORT (default 8050), read-only over the warehouse
	$(BIN)/stock-assets dashboard --host $(STOCK_ASSETS_BIND_HOST) --port $(PORT)

screenshot: install  ## refresh docs/dashboard.png from the browser test
	STOCK_ASSETS_SCREENSHOT=$(CURDIR)/docs/dashboard.png $(BIN)/pytest -q stock_assets_tests/test_dashboard.py -k choosing

bench: install  ## run the benchmarks under benchmarks/ (results and SUMMARY.md in benchmarks/results/)
	$(SYNC) --no-install-project --extra dev --extra bench
	$(BIN)/python benchmarks/features.py
	$(BIN)/python benchmarks/ingestion.py
	$(BIN)/python benchmarks/latency.py
	$(BIN)/python benchmarks/serving.py
	$(BIN)/python benchmarks/batch_graph.py
	$(BIN)/python benchmarks/forecast.py
	$(BIN)/python benchmarks/gbm.py
	$(BIN)/python benchmarks/demo.py --production
	$(BIN)/python benchmarks/daily.py
	$(BIN)/python benchmarks/costs.py
	$(BIN)/python benchmarks/gate.py
	$(BIN)/python benchmarks/summary.py

feed: install  ## poll the market-data API the settings name and publish its bars (stock-assets feed)
	$(BIN)/stock-assets feed

services: install  ## S3 server (SeaweedFS, :8333) and MLflow server (:5000) for the .env.example settings
	$(SYNC) --no-install-project --extra dev --extra services
	BIN=$(BIN) deploy/services.sh start

services-stop:  ## stop what `make services` started
	BIN=$(BIN) deploy/services.sh stop

workers: N ?= 2
workers: install  ## N Celery workers (default 2) for STOCK_ASSETS_EXECUTOR=celery, on STOCK_ASSETS_AMQP_URL
	BIN=$(BIN) deploy/workers.sh start $(N)

workers-stop:  ## stop what `make workers` started
	BIN=$(BIN) deploy/workers.sh stop

chaos: install  ## inject faults into services it starts itself (a RabbitMQ node, PostgreSQL, dagster dev) and print what was lost
	@rm -f $(STOCK_ASSETS_HOME)/chaos.jsonl; mkdir -p $(STOCK_ASSETS_HOME)
	STOCK_ASSETS_CHAOS_REPORT=$(STOCK_ASSETS_HOME)/chaos.jsonl STOCK_ASSETS_CHAOS_OUTAGE_SECONDS=60 \
	    $(BIN)/pytest -q -m faults -p no:cacheprovider; \
	    status=$$?; $(BIN)/python -m stock_assets_tests.chaos $(STOCK_ASSETS_HOME)/chaos.jsonl; exit $$status

lint: install  ## ruff
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# NO_MKDOCS_2_WARNING: Material prints a banner about its successor on every build.
docs: install  ## build the documentation site into site/ (mkdocs, offline, --strict)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

clean:  ## remove the embedded state (not the venv)
	rm -rf $(STOCK_ASSETS_HOME)
