# The two commands of the README: `make demo` and `make test`.
# Each creates .venv, installs clickfan into it, and fetches what it needs.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: install brokers dashboard-assets demo test test-secure test-unit test-docker docker-ready bench lint clean

install: $(VENV)/.installed brokers

# RabbitMQ and Redis (`clickfan up --with rabbitmq,redis`, `clickfan experiment brokers`)
# come from Debian's packages: installed here when root, named otherwise.
brokers:
	@missing=""; \
	[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || missing="$$missing rabbitmq-server"; \
	command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing \
	  || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing; }; \
	else \
	  echo "make install: RabbitMQ/Redis missing (only the brokers experiment needs them): as root, apt-get install$$missing"; \
	fi

$(VENV)/.installed: pyproject.toml app/dashboard/static/package-lock.json
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "clickfan needs Python 3.11 or newer (found " + sys.version.split()[0] + "); set PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@$(MAKE) --no-print-directory dashboard-assets
	@touch $@

# The dashboard's chart library (uPlot from the npm registry, pinned by package-lock.json,
# served from app/dashboard/static/node_modules, git-ignored; nothing is built), and for
# its browser tests Debian's chromium (Playwright cannot download its own browsers here).
dashboard-assets:
	@if command -v npm >/dev/null 2>&1; then \
	  npm ci --prefix app/dashboard/static --no-audit --no-fund --silent; \
	else \
	  echo "make install: no npm, so the dashboard draws no charts (install Node.js and npm)"; \
	fi
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; \
	  else \
	    echo "make install: no /usr/bin/chromium, so the browser tests skip (as root: apt-get install chromium)"; \
	  fi; \
	fi

demo: install
	$(BIN)/clickfan demo

# Starts the native stack if it is not running (and stops it again afterwards); then the
# secure profile's leg (a stack of its own); then, when a Docker engine answers, the
# Docker leg (compose.yaml's containers).
test: install
	$(BIN)/clickfan fetch
	$(BIN)/pytest $(PYTEST_ARGS)
	@$(MAKE) --no-print-directory test-secure
	@if docker info >/dev/null 2>&1 && docker compose version >/dev/null 2>&1; then \
	  $(MAKE) --no-print-directory test-docker; \
	else \
	  echo "make test: no Docker engine answers, so the Docker leg is skipped (make docker-ready)"; \
	fi

# The Docker leg alone: build the image once, then the suite's Docker tests against
# `docker compose` (which they start and, with `down -v`, remove): first the secure
# profile's project (compose.secure.yaml, its own ports 28xxx), then the plain one's, so
# that the two stacks never run at once.
test-docker: install
	docker compose build --quiet
	$(BIN)/pytest --stack=docker tests/docker/test_compose_secure.py $(PYTEST_ARGS)
	$(BIN)/pytest --stack=docker tests/docker tests/integration/test_pipeline_exact.py \
	  --ignore=tests/docker/test_compose_secure.py $(PYTEST_ARGS)

# Docker on a bare Debian machine: engine, daemon, compose v2, a base image (root).
docker-ready:
	bash compose/docker/ready.sh

# The secure profile's tests: ONE whole `clickfan up --secure` stack of their own (three
# SASL_SSL brokers with ACLs, Elasticsearch with TLS and users, HDFS with permissions) in
# a fresh /tmp home on ports 29020-29870 (CLICKFAN_SECURE_TEST_PORT_BASE), beside the
# usual stack; started once, stopped and removed at the end (tests/secure/conftest.py).
test-secure: install
	$(BIN)/clickfan fetch
	$(BIN)/pytest tests/secure -m secure $(PYTEST_ARGS)

test-unit: install
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

# Numbers, not pass/fail: every stage against its own ceiling on the running stack
# (docs/benchmarks.md), then the dashboard's numbers. benchmarks.stack_up, which stops
# and starts the stack, is run on its own.
bench: install
	$(BIN)/python -m benchmarks.suite
	CLICKFAN_DASHBOARD_NUMBERS=1 $(BIN)/pytest tests/integration/test_dashboard_numbers.py -q -s

lint: install
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
