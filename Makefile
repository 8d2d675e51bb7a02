# DNAL book: `make book` builds the book, `make test` runs every check.
# Both create the virtual environment first when it is missing or stale (`make setup`).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROFILE ?= auto
PYTEST_ARGS ?=
# OpenMP threads that spin-wait lose their core on a busy 2-core machine (book/reference/training.md).
OMP_WAIT_POLICY ?= PASSIVE
export OMP_WAIT_POLICY

# The book's own dependencies from registries (notes/toolchain.md): MathJax 3 from npm, copied
# into book/_mathjax (served locally, so the built pages load nothing from outside), and
# Debian's chromium for the browser check of the built pages.
MATHJAX_VERSION := 3.2.2
NPM_MATHJAX := .cache/npm/node_modules/mathjax/es5/tex-chtml.js
BOOK_MATHJAX := book/_mathjax/mathjax/tex-chtml.js
CHROMIUM ?= /usr/bin/chromium
# The notebooks nbval re-runs and compares (their cells tagged nbval-check-output): the paired
# .ipynb files only, never papermill outputs or book build folders.
NOTEBOOKS := $(sort $(wildcard notebooks/*.ipynb))

.PHONY: setup test book notebooks lab lock clean help chromium
help:
	@echo "make book       render every chapter's committed results and build the HTML book (PROFILE=cpu: train the cpu experiments, ~5 h; PROFILE=smoke|paper)"
	@echo "make test       unit tests, notebook regression tests (nbval) and the browser check of the book"
	@echo "make notebooks  re-execute the notebooks (smoke) and store their outputs in notebooks/*.ipynb"
	@echo "make setup      create $(VENV) with the pinned dependencies, MathJax and chromium (run by the above)"
	@echo "make lab        open JupyterLab on the notebooks (.py sources open as notebooks)"

setup: $(STAMP) $(BOOK_MATHJAX) chromium

# pip only: uv and poetry do not see the local torch wheels (notes/toolchain.md).
$(STAMP): requirements-lock.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements-lock.txt
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

$(NPM_MATHJAX):
	command -v npm >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends npm; }
	npm install --prefix .cache/npm --no-audit --no-fund --silent mathjax@$(MATHJAX_VERSION)
	test -f $@ && touch $@

$(BOOK_MATHJAX): $(NPM_MATHJAX) | $(STAMP)
	$(BIN)/python book/build.py mathjax --force
	touch $@

# Idempotent: nothing to do (and no apt call) when chromium is there. Needs root for apt; a
# developer without it installs chromium by hand, or the browser test skips (it fails on CI).
chromium:
	@if ! test -x $(CHROMIUM) && ! command -v chromium >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian's chromium for the browser check of the book"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; \
	  else echo "warning: chromium is missing and we are not root: the browser test will skip"; fi; \
	fi

# Every notebook under papermill (PROFILE=auto: each chapter renders its largest-scale committed
# results; cpu: trains the cpu experiments, about 5 hours, resumable; smoke; paper), then the book.
# What the chapters write goes under book/_build/out (ignored), so the checkout stays as it was;
# PROFILE=cpu writes its chapters' results in place, and DNAL_OUT_ROOT=$(CURDIR) make book
# re-makes every committed result and figure on purpose (book/build.py execute).
book: setup
	MPLBACKEND=Agg $(BIN)/python book/build.py execute --profile $(PROFILE)
	$(BIN)/python book/build.py html
	$(BIN)/python book/build.py check-offline

# The outputs that notebooks/*.ipynb carry (what nbval compares and the browser test shows):
# a fresh default-profile run, stored back without papermill's timings.
notebooks: setup
	MPLBACKEND=Agg $(BIN)/python book/build.py execute
	$(BIN)/python book/build.py store

# The notebooks write their results and figures to a scratch folder here, not over the
# committed ones. A run that collects no test exits 5 and fails the target like any failure.
test: setup
	DNAL_OUT_ROOT=$$(mktemp -d) MPLBACKEND=Agg $(BIN)/python -m pytest tests $(NOTEBOOKS) \
	  --nbval-lax --nbval-current-env --nbval-cell-timeout=600 $(PYTEST_ARGS)

# JupyterLab with the project's settings, .jupyter/labconfig/default_setting_overrides.json (read
# through JUPYTER_CONFIG_PATH; kept in the repository, not in your home): a double click opens a
# notebooks/*.py source as a notebook (jupytext's default viewer) and the news prompt is off.
# LAB_ARGS adds options (tests/test_lab.py: --port=0, a port the system picks, --no-browser).
LAB_ARGS ?=
lab: setup
	JUPYTER_CONFIG_PATH=$(CURDIR)/.jupyter $(BIN)/jupyter lab --notebook-dir=notebooks --allow-root \
	  --ServerApp.ip=127.0.0.1 $(LAB_ARGS)

# Regenerate the lock file from requirements.in (needs the package registry).
lock:
	rm -rf .lockenv && $(PYTHON) -m venv .lockenv
	.lockenv/bin/pip install -q -r requirements.in
	.lockenv/bin/pip freeze --exclude-editable | grep -v '^dnal-core' > requirements-lock.txt
	rm -rf .lockenv

clean:
	rm -rf book/_build book/chapters .pytest_cache
