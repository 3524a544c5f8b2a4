# portfolio-pipeline — the commands a newcomer needs (see README).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DAGSTER_HOME ?= $(CURDIR)/data/dagster_home
export RAY_USAGE_STATS_ENABLED ?= 0
export PYTHONWARNINGS ?= ignore::DeprecationWarning
# The UI listens on this machine only; `make dev UI_HOST=0.0.0.0` exposes it (put it behind
# authentication first: the Dagster UI has none and can launch runs).
UI_HOST ?= 127.0.0.1
UI_PORT ?= 3000

.PHONY: install run test dev dev-postgres test-operations bench lint format clean serve

$(STAMP): setup.py pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first and pinned: a CPU wheel here, the normal wheel elsewhere (STACK_NOTES).
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $(DAGSTER_HOME)/dagster.yaml

run: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/portfolio-pipeline materialize --select '*'
	$(BIN)/portfolio-pipeline status
	@$(BIN)/portfolio-pipeline recommendations 2>/dev/null || echo "(no recommendations table yet)"

test: install
	$(BIN)/python -m pytest

dev: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster dev -w workspace.yaml -h $(UI_HOST) -p $(UI_PORT)

# The read-only REST API, dashboard (/) and Prometheus metrics (/metrics) on
# http://127.0.0.1:8000 (PORTFOLIO_PIPELINE_SERVE_HOST / _PORT; a non-loopback host needs
# PORTFOLIO_PIPELINE_API_TOKEN). README: "Serve the answer".
serve: install
	$(BIN)/portfolio-pipeline serve

# The same with runs, events, schedules and sensors in PostgreSQL (docs/OPERATIONS.md):
# needs PORTFOLIO_PIPELINE_PG_HOST, _PORT, _DB, _USER, _PASSWORD.
PG_DAGSTER_HOME ?= $(CURDIR)/data/dagster_home/postgres
dev-postgres: install
	mkdir -p $(PG_DAGSTER_HOME)
	cp dagster.postgres.yaml $(PG_DAGSTER_HOME)/dagster.yaml
	DAGSTER_HOME=$(PG_DAGSTER_HOME) $(BIN)/dagster dev -w workspace.yaml -h $(UI_HOST) -p $(UI_PORT)

# Schedules, sensors, alerts, PostgreSQL and UI tests only.
test-operations: install
	$(BIN)/python -m pytest portfolio_pipeline_tests/operations

bench: install
	$(BIN)/python -m benchmarks

# The stages' pure modules (their Dagster modules are excluded in pyproject's [tool.mypy]).
MYPY_PATHS := portfolio_pipeline/common portfolio_pipeline/warehouse portfolio_pipeline/market \
	portfolio_pipeline/news portfolio_pipeline/forecasting portfolio_pipeline/portfolio \
	portfolio_pipeline/policies portfolio_pipeline/recommendations \
	portfolio_pipeline/operations/inbox.py portfolio_pipeline/operations/notifications.py \
	portfolio_pipeline/settings.py portfolio_pipeline/tables.py portfolio_pipeline/serving

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy $(MYPY_PATHS)

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf data/warehouse.duckdb data/dagster_home data/models
