# EveryCSR — `make demo` runs the service, `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: demo run test unit lint locales migrations prod-test bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "EveryCSR needs Python 3.11 or newer")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@rm -f $(VENV)/.installed-*
	@touch $@

demo: $(STAMP)
	$(PY) -m bot demo

run: $(STAMP)
	$(PY) -m bot run

test: $(STAMP)
	$(PY) -m pytest

# the fast tier: domain logic, parsers and properties without the app (seconds)
unit: $(STAMP)
	$(PY) -m pytest -m unit

# production mode: contract, fault and fuzz tests against a throw-away redis-server and
# PostgreSQL cluster started on loopback (Debian packages redis-server, postgresql)
prod-test: $(STAMP)
	BOT_REQUIRE_SERVICES=1 $(PY) -m pytest tests/test_prod_stores.py tests/test_prod_pipeline.py \
		tests/test_prod_outbox.py tests/test_prod_workers.py tests/test_fuzz_wire.py

# ruff (lint rules and formatting) and mypy (strict on the kernel bot/core, checked everywhere)
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# re-extract member-facing strings and update every catalog
locales: $(STAMP)
	$(PY) -m bot.locales_tool

# write a migration for model changes (developers)
migrations: $(STAMP)
	$(PY) -m tortoise -c bot.tortoise_conf.TORTOISE_ORM makemigrations

clean:
	rm -rf $(VENV) data/*.sqlite3*
