# django-audit-admin: two commands for people, the rest are helpers.
#
#   make demo   set up .venv, migrate, seed once, seal the history and serve the admin at
#               http://127.0.0.1:8000/admin/ (logins admin, editor, viewer;
#               password = username, demo only)
#   make test   set up .venv and run the whole test suite, browser tests included
#
# Both use a private PostgreSQL started from the pgserver package, unless
# DATABASE_URL points them at another server.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Reinstall when pyproject.toml changes (dependencies, extras, build config).
INSTALLED := $(VENV)/.installed
MANAGE := $(BIN)/python example_project/manage.py
DEMO_ADDR ?= 127.0.0.1:8000
PYTEST_ARGS ?=

.PHONY: demo test

demo: $(INSTALLED)
	$(MANAGE) migrate --noinput
	$(MANAGE) seed
	$(MANAGE) audit seal
	$(MANAGE) audit partitions
	@echo
	@echo "  Admin:  http://$(DEMO_ADDR)/admin/"
	@echo "  Logins: admin / admin     (superuser)"
	@echo "          editor / editor   (may view, add, change and delete shop data)"
	@echo "          viewer / viewer   (may only view shop data)"
	@echo "  Passwords equal usernames: for this local demo only. Stop with Ctrl+C."
	@echo
	$(MANAGE) runserver $(DEMO_ADDR)

test: $(INSTALLED) browser
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# -- helpers ------------------------------------------------------------------------

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(INSTALLED): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -e '.[dev]'
	touch $@

# The browser tests use Debian's Chromium when it is installed, else Playwright's own
# build, downloaded here once.
.PHONY: browser
browser: $(INSTALLED)
	@if [ ! -x /usr/bin/chromium ]; then $(BIN)/python -m playwright install chromium; fi
