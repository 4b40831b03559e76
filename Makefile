# make serve: set up .venv, then run the dashboard on the embedded data.
# make test:  set up .venv, then run the whole test suite (browser tests included).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.ppviz-installed
PORT ?= 5006
SHARED := $(abspath $(CURDIR)/../shared)
CHROMIUM ?= /usr/bin/chromium

# Maps offline: use the shared Natural Earth files when they are there.
ifneq ($(wildcard $(SHARED)/natural-earth),)
export PPVIZ_NATURAL_EARTH ?= $(SHARED)/natural-earth
endif

.PHONY: setup serve test test-fast bench clean

# Idempotent: re-installs only when pyproject.toml or constraints.txt changed.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[test]'
	@touch $(STAMP)

setup: $(STAMP)

serve: setup
	$(BIN)/ppviz serve --port $(PORT)

test: setup
	$(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m "not ui and not slow"

bench: setup
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[test,bench]'
	$(BIN)/python benchmarks/bench_rapsd.py

clean:
	rm -rf $(VENV) .pytest_cache
