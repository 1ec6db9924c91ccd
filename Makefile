# Two commands for a newcomer on a fresh Debian machine: `make run` and `make test`.
SHELL := /bin/bash
PY := .venv/bin/python
PIP := .venv/bin/pip
export OMP_NUM_THREADS ?= 1
export PYTHONUNBUFFERED := 1
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
HOST ?= 127.0.0.1
PORT ?= 8000
# One training worker per core (each trains one run at a time on one torch thread).
TRAIN_WORKERS ?= $(shell nproc 2>/dev/null || echo 1)

.PHONY: run test setup system-deps browser-deps migrate demo bench clean

.venv/.installed: requirements.txt
	test -x $(PY) || python3 -m venv .venv
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -r requirements.txt
	touch $@

.venv/.installed-test: requirements-test.txt .venv/.installed
	$(PIP) install -q -r requirements-test.txt
	touch $@

system-deps:
	@command -v redis-server >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq redis-server; }

browser-deps:
	@test -x /usr/bin/chromium || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium; }

setup: .venv/.installed system-deps

migrate: setup
	$(PY) manage.py migrate --noinput -v0

demo: migrate
	$(PY) manage.py seed_demo
	$(PY) manage.py mlflow_store  # the MLflow tables, once, before the server and the workers open the store

# The local MLflow UI's login (its basic-auth app, see mlflow-auth.ini), generated once per checkout.
var/mlflow-auth.env:
	@mkdir -p var
	@python3 -c "import secrets; print('MLFLOW_AUTH_ADMIN_USERNAME=admin'); print('MLFLOW_AUTH_ADMIN_PASSWORD=' + secrets.token_urlsafe(12)); print('MLFLOW_FLASK_SERVER_SECRET_KEY=' + secrets.token_urlsafe(32))" > $@.tmp && mv $@.tmp $@

run: demo var/mlflow-auth.env
	@echo
	@echo "  Runwise:    http://$(HOST):$(PORT)/   login: demo / demo-pass-123"
	@echo "  MLflow UI:  http://127.0.0.1:5000/   login: admin / $$(sed -n 's/^MLFLOW_AUTH_ADMIN_PASSWORD=//p' var/mlflow-auth.env)"
	@echo "  Emails:     var/mail/ (a local mail catcher on 127.0.0.1:1025)"
	@echo "  Workers:    $(TRAIN_WORKERS) training (one run each at a time), 1 for analysis, email and tuning"
	@echo
	HOST=$(HOST) WEB_PORT=$(PORT) .venv/bin/honcho start -f Procfile -c train=$(TRAIN_WORKERS)  # honcho sets PORT per process itself

# Two processes (most tests wait on real workers, servers and browsers); each has its own stores and Redis.
# Whole files, the longest first (tests/conftest.py orders them), so that no long file ends the run alone.
PYTEST_ARGS ?= -n 2 --dist loadfile --no-loadscope-reorder

test: setup browser-deps .venv/.installed-test
	$(PY) -m pytest $(PYTEST_ARGS)

bench: setup .venv/.installed-test
	@for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf var .venv
