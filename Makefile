# Two commands for a newcomer: `make run` (demo: web + worker + simulated Shelly)
# and `make test` (the whole suite on SQLite, then on PostgreSQL + Redis).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PG_URL ?= postgres://postgres@127.0.0.1:5432/shelly_monitor
REDIS_TEST_URL ?= redis://127.0.0.1:6379/1

.PHONY: install run test test-sqlite test-postgres test-homebridge lint bench services browser messages

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

browser:
	@bash scripts/ensure_chromium.sh

test: install services browser test-sqlite test-postgres

test-sqlite: install
	$(VENV)/bin/pytest

# Production services, but the test client speaks plain http: no redirect to https.
test-postgres: install
	DATABASE_URL=$(PG_URL) REDIS_URL=$(REDIS_TEST_URL) SECRET_KEY=test-only-secret BEHIND_TLS_PROXY=false $(VENV)/bin/pytest

# End to end against a real Homebridge (npm, ~470 packages, installed once into HOMEBRIDGE_RIG_DIR);
# Mosquitto must run (make services). Skipped by the normal test run.
test-homebridge: install
	RUN_HOMEBRIDGE=1 $(VENV)/bin/pytest -q tests/alerts/test_homebridge_e2e.py

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# Translations: extract the project's strings into locale/fr/LC_MESSAGES/django.po
# (needs GNU gettext's xgettext: apt-get install gettext), then compile every
# catalog with a pure-Python tool (polib), so the committed .mo match the .po.
messages: install
	$(PY) manage.py makemessages -l fr --no-obsolete --ignore "data/*" --ignore "tests/*" --ignore "bench/*" --ignore "static/*"
	$(PY) scripts/compile_messages.py
