# Labelvault developer commands. `make run` serves the demo, `make test` checks everything.
# Needs only Python 3.11 (with venv), Node.js/npm and make: no Docker, PostgreSQL or Redis.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3 2>/dev/null)
VENV := .venv
BIN := $(VENV)/bin
# Stamps: reinstall only when the dependency list changes.
PY_STAMP := $(VENV)/.installed
# Hugging Face `datasets` in a virtualenv of its own: its top-level package is named
# `datasets`, like our app, so it cannot be imported beside it. The Parquet export's test
# loads the export there, as a user's training code would.
HF_VENV := .venv-hf
HF_STAMP := $(HF_VENV)/.installed
NODE_STAMP := node_modules/.installed

# Services `make test` uses when they answer on 127.0.0.1 (CI machines run both); without
# them it uses SQLite and the embedded SQLAlchemy broker. An exported DATABASE_URL or
# CELERY_BROKER_URL always wins.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/test
TEST_BROKER_URL ?= redis://127.0.0.1:6379/15
# Scratch space of the test session (SQLite files, embedded broker), apart from the data
# of `make run` in var/ so both can run at once.
TEST_VAR_DIR ?= $(CURDIR)/var/test
# Extra pytest arguments, e.g. make test PYTEST_ARGS='-k stack -x'
PYTEST_ARGS ?=

.PHONY: help run test lint migrate venv install node_modules hf-venv chromium clean reset-data

help:
	@echo "make run         serve the demo at http://127.0.0.1:8000 (Ctrl-C stops everything)"
	@echo "make test        lint, import contracts, then the whole test suite"
	@echo "make lint        ruff check, ruff format --check, lint-imports"
	@echo "make install     create .venv and install the Python packages (also: make venv)"
	@echo "make node_modules  npm ci (front-end packages served as static files)"
	@echo "make migrate     apply database migrations"
	@echo "make clean       remove .venv, node_modules and caches (keeps the data in var/)"
	@echo "make reset-data  DELETE var/: database, stored objects, logs, demo passwords"

# --- Installation -------------------------------------------------------------------------

$(PY_STAMP): pyproject.toml
	@if [ -z "$(PYTHON)" ]; then echo "Python 3.11 not found (set PYTHON=...)" >&2; exit 1; fi
	@if [ ! -x $(BIN)/pip ]; then \
	  echo "creating $(VENV) with $(PYTHON)"; \
	  $(PYTHON) -m venv $(VENV) || { \
	    echo "'$(PYTHON) -m venv' failed: on Debian, apt-get install python3-venv" >&2; \
	    rm -rf $(VENV); exit 1; }; \
	fi
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

venv install: $(PY_STAMP)

$(NODE_STAMP): package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

node_modules: $(NODE_STAMP)

$(HF_STAMP):
	$(PYTHON) -m venv $(HF_VENV)
	$(HF_VENV)/bin/python -m pip install --quiet 'datasets>=3,<6' 'pillow>=11,<13'
	@touch $@

hf-venv: $(HF_STAMP)

# Browser tests (tests/e2e) drive Debian's Chromium; installed only once such tests exist.
chromium:
	@if [ -n "$$(find tests/e2e -name 'test_*.py' 2>/dev/null | head -1)" ] \
	    && [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -q && apt-get install -y -q --no-install-recommends chromium; \
	  else \
	    echo "tests/e2e needs Debian's Chromium: sudo apt-get install chromium" >&2; exit 1; \
	  fi; \
	fi

# --- Running ------------------------------------------------------------------------------

# Everything on this machine: SeaweedFS, migrate, bucket, demo users, worker, beat, web.
# config/stack.py supervises them; DATABASE_URL / CELERY_BROKER_URL / S3_* point it at
# services of your own instead.
run: export DEBUG ?= 1
run: $(PY_STAMP) $(NODE_STAMP)
	exec $(BIN)/python -m config.stack

migrate: export DEBUG ?= 1
migrate: $(PY_STAMP)
	$(BIN)/python manage.py migrate

# --- Checking -----------------------------------------------------------------------------

lint: $(PY_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

# Whether the service of a URL answers: a TCP connect; a redis:// one must also PONG.
define ANSWERS_PY
import socket, sys
from urllib.parse import urlsplit
url = urlsplit(sys.argv[1])
default_port = {"postgres": 5432, "postgresql": 5432, "redis": 6379}.get(url.scheme, 0)
try:
    with socket.create_connection((url.hostname, url.port or default_port), timeout=1) as conn:
        if url.scheme == "redis":
            conn.sendall(b"PING\r\n")
            sys.exit(0 if conn.recv(16).startswith(b"+PONG") else 1)
except OSError:
    sys.exit(1)
endef
export ANSWERS_PY
answers = $(BIN)/python -c "$$ANSWERS_PY" '$(1)'

test: export DEBUG := 1
test: export VAR_DIR := $(TEST_VAR_DIR)
test: lint $(NODE_STAMP) $(HF_STAMP) chromium
	@mkdir -p "$$VAR_DIR"
	@if [ -z "$${DATABASE_URL:-}" ] && $(call answers,$(TEST_DATABASE_URL)); then \
	  export DATABASE_URL='$(TEST_DATABASE_URL)'; fi; \
	if [ -z "$${CELERY_BROKER_URL:-}" ] && $(call answers,$(TEST_BROKER_URL)); then \
	  export CELERY_BROKER_URL='$(TEST_BROKER_URL)'; fi; \
	echo "make test: database $${DATABASE_URL:-SQLite in $$VAR_DIR}" | sed -E 's#//[^@/]*@#//***@#'; \
	echo "make test: broker $${CELERY_BROKER_URL:-embedded (SQLAlchemy on SQLite in $$VAR_DIR)}"; \
	echo "make test: S3 is a SeaweedFS server the test session starts on free ports"; \
	exec $(BIN)/pytest -v $(PYTEST_ARGS)

# --- Cleaning -----------------------------------------------------------------------------

# Never touches var/ (the database and stored objects of `make run`): see reset-data.
clean:
	rm -rf $(VENV) $(HF_VENV) node_modules .ruff_cache .pytest_cache .mypy_cache .import_linter_cache *.egg-info
	find . -name __pycache__ -type d -not -path './var/*' -prune -exec rm -rf {} +

reset-data:
	@data="$${VAR_DIR:-var}"; \
	if [ -f "$$data/stack.json" ] && kill -0 "$$(sed -E 's/.*"pid": ([0-9]+).*/\1/' "$$data/stack.json")" 2>/dev/null; then \
	  echo "make run is still running with $$data: stop it first (Ctrl-C)" >&2; exit 1; fi; \
	echo "deleting $$data (database, stored objects, logs, demo passwords)"; \
	rm -rf "$$data"
