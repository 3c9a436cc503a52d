# Two commands a new user needs:  make demo  (the example pipeline on local stand-ins)
#                                 make test  (lint, types and the test suite on Airflow 3)
# CI runs `make ci`: the suite on Airflow 3.3 and 2.10, the wheel install check on every minor from
# 2.10 to 3.3 (requirements/airflow-<minor>.lock) and the demo.

PYTHON ?= python3
# Machines that set PYTHONDONTWRITEBYTECODE recompile Airflow from source in every process: each
# `airflow` CLI call, task process and component took twice as long (3.3 s vs 1.6 s for
# `airflow version`). The compiled files land in __pycache__ folders, which git ignores.
unexport PYTHONDONTWRITEBYTECODE
UV_VERSION := 0.13.8
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
VENV_AF2 := .venv-af2
PY := $(VENV)/bin/python
PY_AF2 := $(VENV_AF2)/bin/python
PYTEST_ARGS ?=
# Azurite (the Azure Storage emulator) for the Azure tests and benchmarks: npm package pinned in
# requirements/azurite/package-lock.json, installed into the repo's tool folder (needs Node.js and npm).
AZURITE_DIR := $(TOOLS)/azurite
AZURITE := $(AZURITE_DIR)/node_modules/.bin/azurite-blob

.PHONY: help install install-af2 azurite lint typecheck pytest test test-af2 install-check demo bench docs docs-check ci ci-lane-test ci-lane-matrix clean lock

help:
	@echo "make demo           run the example DAG end to end on the emulator and a local S3"
	@echo "make test           ruff, mypy and pytest on Airflow 3.3 (.venv)"
	@echo "make test-af2       pytest on Airflow 2.10 (.venv-af2)"
	@echo "make install-check  the built wheel alone in fresh Airflow 2.10 ... 3.3 envs: form, connection test, demo"
	@echo "make bench          benchmarks against the Airflow anchors (not part of the tests)"
	@echo "make docs           the documentation site into docs/_build/html (Sphinx; warnings are errors)"
	@echo "make docs-check     make docs, then every page opened in headless Chromium (screenshots in docs/_build/screenshots)"
	@echo "make azurite        install the Azure Storage emulator (npm) into .tools/azurite (test and bench do it)"
	@echo "make ci             everything CI runs"

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.installed: requirements/airflow-3.3.lock pyproject.toml | $(UV)
	$(UV) venv --quiet --allow-existing --python $(PYTHON) $(VENV)
	VIRTUAL_ENV=$(VENV) $(UV) pip sync --quiet requirements/airflow-3.3.lock
	VIRTUAL_ENV=$(VENV) $(UV) pip install --quiet --no-deps -e .
	touch $@

$(VENV_AF2)/.installed: requirements/airflow-2.10.lock pyproject.toml | $(UV)
	$(UV) venv --quiet --allow-existing --python $(PYTHON) $(VENV_AF2)
	VIRTUAL_ENV=$(VENV_AF2) $(UV) pip sync --quiet requirements/airflow-2.10.lock
	VIRTUAL_ENV=$(VENV_AF2) $(UV) pip install --quiet --no-deps -e .
	touch $@

# The documentation tools (requirements/docs.lock, locked against airflow-3.3.lock: no Airflow pin moves) go
# into .venv, where autodoc imports the provider. After `pip sync` of .venv (which removes them) again.
$(VENV)/.docs-installed: requirements/docs.lock $(VENV)/.installed | $(UV)
	VIRTUAL_ENV=$(VENV) $(UV) pip install --quiet -r requirements/docs.lock
	touch $@

install: $(VENV)/.installed
install-af2: $(VENV_AF2)/.installed

# npm ci installs exactly the committed lock; --ignore-scripts: Azurite needs no install script.
$(AZURITE): requirements/azurite/package.json requirements/azurite/package-lock.json
	mkdir -p $(AZURITE_DIR)
	cp requirements/azurite/package.json requirements/azurite/package-lock.json $(AZURITE_DIR)/
	cd $(AZURITE_DIR) && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
	test -x $@ && touch $@

azurite: $(AZURITE)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install
	$(VENV)/bin/mypy

pytest: install azurite
	$(PY) -m pytest $(PYTEST_ARGS)

test: lint typecheck pytest

# What does not depend on the Airflow version (the emulator, the guards' self-tests, boto3's upload
# memory) runs once, in `make test` on Airflow 3.3.
test-af2: install-af2 azurite
	$(PY_AF2) -m pytest -m "not version_independent" $(PYTEST_ARGS)

# AIRFLOW_MINORS="3.0 3.1" checks only those minors (default: every requirements/airflow-*.lock).
AIRFLOW_MINORS ?=
install-check: install | $(UV)
	$(PY) .ci/install_check.py --uv $(UV) $(foreach minor,$(AIRFLOW_MINORS),--only $(minor))

demo: install
	$(PY) scripts/demo.py

bench: install azurite
	$(PY) -m benchmarks.run

# -E: a fresh build each time (about 10 s). Sphinx reports a page's warnings only when it reads or writes
# that page: after a failed build an incremental one would pass without the fix.
docs: $(VENV)/.docs-installed
	$(VENV)/bin/sphinx-build -E -W --keep-going -n -q -b html docs docs/_build/html

# Debian's Chromium (apt) when the machine has none: CI machines start without it.
CHROMIUM := /usr/bin/chromium
docs-check: docs
	@test -x $(CHROMIUM) || { start=$$(date +%s); \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null \
	  && echo "chromium installed in $$(( $$(date +%s) - start ))s"; }
	$(PY) scripts/check_docs_pages.py --chromium $(CHROMIUM)

# CI: the environments first (both lanes need them), the wheel on the newest Airflow (a packaging
# error fails within minutes), then two lanes side by side, one per core: `make test` (the README's
# test command, Airflow 3.3) and the rest of the matrix (the wheel on every other minor, the suite on
# 2.10, the demo, the docs site). Each lane's output is printed whole when it ends, with its time. The docs
# tools go into .venv before the lanes start: the test lane runs pytest in it.
OTHER_MINORS = $(filter-out 3.3,$(patsubst requirements/airflow-%.lock,%,$(wildcard requirements/airflow-*.lock)))
ci: install install-af2 azurite $(VENV)/.docs-installed
	$(MAKE) --no-print-directory install-check AIRFLOW_MINORS=3.3
	$(MAKE) --no-print-directory -j2 --output-sync=target ci-lane-test ci-lane-matrix

# Parts of the Airflow 3.3 suite the matrix lane runs instead, so that the two lanes end together
# (measured on 3113230: the test lane 1,129 s and the matrix lane 769 s with them in the test lane; they
# take about 135 s + 60 s on a quiet machine). Every test still runs once on 3.3: `make test` outside
# CI runs them all.
CI_MATRIX_TESTS := tests/benchmarks tests/docs tests/metrics tests/links
ci-lane-test:
	@start=$$(date +%s); \
	$(MAKE) --no-print-directory test PYTEST_ARGS="$(PYTEST_ARGS) $(foreach path,$(CI_MATRIX_TESTS),--ignore=$(path))"; \
	status=$$?; echo "lane test (Airflow 3.3 but $(CI_MATRIX_TESTS)): $$(( $$(date +%s) - start ))s, exit $$status"; \
	exit $$status

ci-lane-matrix:
	@start=$$(date +%s); \
	$(MAKE) --no-print-directory install-check AIRFLOW_MINORS="$(OTHER_MINORS)" && \
	$(MAKE) --no-print-directory test-af2 && $(MAKE) --no-print-directory demo && \
	$(MAKE) --no-print-directory docs docs-check && \
	$(PY) -m pytest $(PYTEST_ARGS) $(CI_MATRIX_TESTS); status=$$?; \
	echo "lane matrix (wheel on $(OTHER_MINORS), suite on 2.10, demo, docs, 3.3: $(CI_MATRIX_TESTS)):" \
	  "$$(( $$(date +%s) - start ))s, exit $$status"; \
	exit $$status

# Re-resolve the pinned environments, one per Airflow minor (needs the package registry).
lock: | $(UV)
	for in in requirements/airflow-*.in; do $(UV) pip compile --quiet -p 3.11 $$in -o $${in%.in}.lock || exit 1; done

clean:
	rm -rf $(VENV) $(VENV_AF2) $(TOOLS) build dist *.egg-info .demo .bench docs/_build
