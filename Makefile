# DNAL book: `make book` builds the book, `make test` runs every check.
# Both create the virtual environment first when it is missing or stale (`make setup`).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROFILE ?= smoke
PYTEST_ARGS ?=

.PHONY: setup test book lab lock clean help
help:
	@echo "make book   execute the notebooks ($(PROFILE) profile) and build the HTML book"
	@echo "make test   unit tests, notebook regression tests and the browser check"
	@echo "make setup  create $(VENV) with the pinned dependencies (run by the two above)"
	@echo "make lab    open JupyterLab on the notebooks"

setup: $(STAMP)

# pip only: uv and poetry do not see the local torch wheels (notes/toolchain.md).
$(STAMP): requirements-lock.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements-lock.txt
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lab: setup
	$(BIN)/jupyter lab --notebook-dir=notebooks --allow-root --IdentityProvider.token=''

# Regenerate the lock file from requirements.in (needs the package registry).
lock:
	rm -rf .lockenv && $(PYTHON) -m venv .lockenv
	.lockenv/bin/pip install -q -r requirements.in
	.lockenv/bin/pip freeze --exclude-editable | grep -v '^dnal-core' > requirements-lock.txt
	rm -rf .lockenv

clean:
	rm -rf book/_build .pytest_cache
