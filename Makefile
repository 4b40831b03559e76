# make serve: set up .venv, then run the dashboard on the embedded data.
# make test:  set up .venv, then run the whole test suite (browser tests and the wheel test
#             included); installs Debian's Chromium first when it is missing and this is root
#             with apt-get, and otherwise stops with the command to run.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.ppviz-installed
PORT ?= 5006
SHARED := $(abspath $(CURDIR)/../shared)
CHROMIUM ?= /usr/bin/chromium
# the browser tests use this Chromium (tests/ui/conftest.py)
export PPVIZ_CHROMIUM ?= $(CHROMIUM)

# Maps offline: use the shared Natural Earth files when they are there.
ifneq ($(wildcard $(SHARED)/natural-earth),)
export PPVIZ_NATURAL_EARTH ?= $(SHARED)/natural-earth
endif

.PHONY: setup chromium serve test test-fast bench clean

# Idempotent: re-installs only when pyproject.toml or constraints.txt changed.
$(STAMP): pyproject.toml setup.py constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[test]'
	@touch $(STAMP)

setup: $(STAMP)

# Browser tests need Debian's Chromium (Playwright cannot download its own browser here).
chromium:
	@if [ -x "$(CHROMIUM)" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "Chromium missing: apt-get install -y chromium"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null \
	    || { echo "error: apt-get install -y chromium failed" >&2; exit 1; }; \
	  [ -x "$(CHROMIUM)" ] || { echo "error: chromium installed, but $(CHROMIUM) is missing (make CHROMIUM=/path/to/chromium)" >&2; exit 1; }; \
	else \
	  echo "error: the browser tests need Debian's Chromium at $(CHROMIUM). Install it with:" >&2; \
	  echo "    sudo apt-get install -y chromium" >&2; \
	  echo "(or point make at another build: make test CHROMIUM=/path/to/chromium)" >&2; \
	  exit 1; \
	fi

serve: setup
	$(BIN)/ppviz serve --port $(PORT)

test: setup chromium
	$(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m "not ui and not slow"

bench: setup
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[test,bench]'
	$(BIN)/python -m pytest -q -m bench
	$(BIN)/python benchmarks/bench_rapsd.py

clean:
	rm -rf $(VENV) .pytest_cache
