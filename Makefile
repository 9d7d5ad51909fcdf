# Two commands for a newcomer: `make run` (demo: web + worker + simulated Shelly)
# and `make test` (the whole suite on SQLite, then on PostgreSQL + Redis).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PG_URL ?= postgres://postgres@127.0.0.1:5432/shelly_monitor
REDIS_TEST_URL ?= redis://127.0.0.1:6379/1

.PHONY: install run test test-sqlite test-postgres lint bench services

$(VENV)/.installed: requirements.txt requirements-dev.txt
	@test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements-dev.txt
	@touch $@

install: $(VENV)/.installed

run: install
	$(PY) manage.py demo

services:
	@bash scripts/ensure_services.sh

test: install services test-sqlite test-postgres

test-sqlite: install
	$(VENV)/bin/pytest

# Production services, but the test client speaks plain http: no redirect to https.
test-postgres: install
	DATABASE_URL=$(PG_URL) REDIS_URL=$(REDIS_TEST_URL) SECRET_KEY=test-only-secret BEHIND_TLS_PROXY=false $(VENV)/bin/pytest

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
