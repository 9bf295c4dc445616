# Every target sets itself up from a fresh clone: nothing needs installing by hand
# beyond Python 3.11, Node 20, Java 17 and the Google Cloud SDK emulators.
SHELL := /bin/bash
PY := .venv/bin/python
VENV_STAMP := .venv/.installed
CHECKOV_STAMP := .venv-checkov/.installed
CHECKOV_VERSION := 3.3.30
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export JSII_RUNTIME_PACKAGE_CACHE_ROOT := $(CURDIR)/.cache/jsii
export CHECKPOINT_DISABLE := 1
export GOOGLE_CLOUD_SPANNER_MULTIPLEXED_SESSIONS_FOR_RW := false
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: demo dev bench test lint typecheck unit venv clean synth chromium

demo: $(VENV_STAMP)
	$(PY) -m devstack.demo

# The local stack, kept up until Ctrl-C or `baton dev --stop`; other baton commands in this checkout find it.
dev: $(VENV_STAMP)
	$(PY) -m devstack.dev $(DEV_ARGS)

# Measurements, not tests: never part of `make test`, which must not fail on speed.
bench: $(VENV_STAMP)
	$(PY) -m benchmarks

test: $(VENV_STAMP) $(CHECKOV_STAMP) chromium lint typecheck
	$(PY) -m pytest

lint: $(VENV_STAMP)
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/lint-imports --no-cache

typecheck: $(VENV_STAMP)
	.venv/bin/mypy handlers/baton handlers/main.py cli devstack cdk benchmarks --exclude benchmarks/out

unit: $(VENV_STAMP)
	$(PY) -m pytest tests/unit tests/handlers

synth: $(VENV_STAMP)
	$(PY) cdk/main.py

venv: $(VENV_STAMP)

$(VENV_STAMP): pyproject.toml
	test -x $(PY) || python3.11 -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,cli]'
	touch $@

# The run page's browser tests load it in Debian's Chromium; without it (and without root to install it) they skip.
chromium:
	@command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium; } \
		|| echo "chromium is not installed and could not be: the browser tests will be skipped" >&2

# checkov pins libraries that clash with the project's, so it lives in its own venv.
$(CHECKOV_STAMP):
	test -x .venv-checkov/bin/python || python3.11 -m venv .venv-checkov
	.venv-checkov/bin/python -m pip install -q --upgrade pip
	.venv-checkov/bin/python -m pip install -q checkov==$(CHECKOV_VERSION)
	touch $@

clean:
	rm -rf .venv .venv-checkov cdktf.out .devstack .cache .pytest_cache .mypy_cache .ruff_cache
