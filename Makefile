# Fresh-machine entry points: `make run` (service) and `make test` (test suite).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install run test test-pg test-all lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## Migrate, seed and serve every channel configured in .env / the environment.
run: install
	$(VENV)/bin/switchboard run

## The whole suite on SQLite (and on PostgreSQL too when TEST_DATABASE_URL is set).
test: install
	$(PY) -m pytest

## The suite against a throw-away PostgreSQL cluster (Debian's postgresql + pg_virtualenv).
test-pg: install
	pg_virtualenv -o max_connections=200 sh -c 'TEST_DATABASE_URL="postgresql+asyncpg://$$PGUSER:$$PGPASSWORD@$$PGHOST:$$PGPORT/$$PGDATABASE" $(PY) -m pytest'

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

bench: install
	$(PY) bench/pipeline_bench.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
