# The README's commands. Every target works on a fresh machine with only Python 3.11.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
# What is installed: the runtime set (make run) and every requirement (make venv / test).
RUNTIME_STAMP := $(VENV)/.installed-runtime
STAMP := $(VENV)/.installed
# pip-compile (pip-tools, in requirements-dev.in): every package pinned with its hashes, no
# index or path of the machine that ran it.
LOCK := $(VENV)/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras \
	--no-emit-index-url --no-emit-find-links --no-emit-trusted-host
# pytest-xdist workers for `make test`. Most slow tests wait on real worker clusters, servers
# and leases rather than on the CPU, so more workers than cores pays off.
TEST_WORKERS ?= 6

.PHONY: venv run stop test lint format lock

$(PY):
	$(PYTHON) -m venv $(VENV)

# When a requirements file holds hashes, pip installs in hash-checking mode: every package,
# transitive ones included, must match its pinned hash.
$(RUNTIME_STAMP): requirements.txt | $(PY)
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(STAMP): requirements.txt requirements-dev.txt | $(PY)
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@ $(RUNTIME_STAMP)

venv: $(STAMP)

# The runtime set only: tests and tools are not installed by `make run`.
run: $(RUNTIME_STAMP)
	$(PY) -m apiops_site.run

# Stops this checkout's `make run` (var/run.pid) and then the embedded PostgreSQL, also one
# that a `manage.py` call started and left running. Nothing to stop without a .venv.
stop:
	@if [ -x $(PY) ]; then $(PY) -m apiops_site.run stop; fi

test: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: venv
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Compile requirements.in and requirements-dev.in into hash-pinned requirements.txt and
# requirements-dev.txt (see README "Dependencies"). Pins already in the .txt files are kept;
# `make lock LOCK_ARGS=--upgrade` moves every transitive package to its newest version.
lock: venv
	$(LOCK) $(LOCK_ARGS) --output-file=requirements.txt requirements.in
	$(LOCK) $(LOCK_ARGS) --output-file=requirements-dev.txt requirements-dev.in
