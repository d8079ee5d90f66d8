# The two commands of the README: `make demo` and `make test`.
# Each creates .venv, installs clickfan into it, and fetches what it needs.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: install demo test test-unit test-docker docker-ready bench lint clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "clickfan needs Python 3.11 or newer (found " + sys.version.split()[0] + "); set PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $@

demo: install
	$(BIN)/clickfan demo

# Starts the native stack if it is not running (and stops it again afterwards); then,
# when a Docker engine answers, the Docker leg (compose.yaml's containers).
test: install
	$(BIN)/clickfan fetch
	$(BIN)/pytest $(PYTEST_ARGS)
	@if docker info >/dev/null 2>&1 && docker compose version >/dev/null 2>&1; then \
	  $(MAKE) --no-print-directory test-docker; \
	else \
	  echo "make test: no Docker engine answers, so the Docker leg is skipped (make docker-ready)"; \
	fi

# The Docker leg alone: build the image once, then the suite's Docker tests against
# `docker compose` (which it starts and, with `down -v`, removes).
test-docker: install
	docker compose build --quiet
	$(BIN)/pytest --stack=docker tests/docker tests/integration/test_pipeline_exact.py $(PYTEST_ARGS)

# Docker on a bare Debian machine: engine, daemon, compose v2, a base image (root).
docker-ready:
	bash compose/docker/ready.sh

test-unit: install
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

# Numbers, not pass/fail: the stack's start-up and memory (restarts it), the
# producer against kafka-producer-perf-test, throughput and latency through the workers.
# Every stage against its own ceiling on the running stack (see docs/benchmarks.md);
# benchmarks.stack_up (which stops and starts the stack) is run on its own.
bench: install
	$(BIN)/python -m benchmarks.suite

lint: install
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
