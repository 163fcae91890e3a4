# Two commands: `make demo` (service with demo data) and `make test` (the test suite).
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
LOCAL_DB := postgres://recsvc@127.0.0.1:5432/recsvc
LOCAL_REDIS := redis://127.0.0.1:6379/0
TEST_REDIS := redis://127.0.0.1:6379/15

.PHONY: venv demo test lint audit bench-ingest services

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -c constraints.txt -e '.[dev]'
	# torchrec names the CUDA package fbgemm-gpu; fbgemm-gpu-cpu (installed above) provides the module.
	$(PIP) install -q --no-deps -c constraints.txt torchrec==1.9.2
	touch $@

venv: $(VENV)/.installed

services:
	bash deploy/local/services.sh

demo: venv
	$(PY) manage.py demo

# With DATABASE_URL set the service refuses to start without keys of its own (config/settings.py): the
# suite gets throw-away keys made for this run, never the caller's, and plain http for the test client.
test: venv services
	DATABASE_URL=$${TEST_DATABASE_URL:-$(LOCAL_DB)} REDIS_URL=$${TEST_REDIS_URL:-$(TEST_REDIS)} \
	DJANGO_SECRET_KEY="test-only-$$($(PY) -c 'import secrets; print(secrets.token_urlsafe(48))')" \
	RECSVC_FIELD_ENCRYPTION_KEY="$$($(PY) -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')" \
	RECSVC_HTTPS_ONLY=0 \
		$(PY) -m pytest $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-cache

# Known vulnerabilities in the locked dependencies (pip-audit; says so when no advisory service is reachable).
audit: venv
	$(PY) .ci/audit_dependencies.py

bench-ingest: venv services
	DATABASE_URL=$(LOCAL_DB) REDIS_URL=$(LOCAL_REDIS) $(PY) tests/bench/ingest.py
