# One entry point for people and CI. `make demo` and `make test` set themselves up from the lock.
PYTHON ?= python3
UV_VERSION := 0.13.9
BOOT := .tools/uv
UV := $(BOOT)/bin/uv
VENV := .venv
STAMP := $(VENV)/.synced
export UV_PROJECT_ENVIRONMENT := $(abspath $(VENV))
export DVC_NO_ANALYTICS := 1
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: setup demo test lint typecheck ui serve bench clean

$(UV):
	$(PYTHON) -m venv $(BOOT)
	$(BOOT)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(STAMP): $(UV) uv.lock pyproject.toml
	$(UV) sync --frozen --quiet
	touch $@

setup: $(STAMP)

demo: setup
	$(VENV)/bin/scoreloop demo

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: setup
	$(VENV)/bin/mypy

test: setup lint typecheck
	$(VENV)/bin/pytest --timeout=900

ui: setup
	$(VENV)/bin/scoreloop ui

serve: setup
	$(VENV)/bin/scoreloop serve

bench: setup
	for script in benchmarks/*.py; do $(VENV)/bin/python $$script || exit 1; done

clean:
	rm -rf .scoreloop
