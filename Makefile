# hookstream — every target bootstraps .venv when it is missing.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
#: The broker of `make run`, `make bench` and `make chaos`: tansu (embedded, the default) or kafka.
ENGINE ?= tansu
#: The engines `make test` runs the integration suite on; empty = every engine this machine
#: can start (Apache Kafka where a JDK 17+ and Maven or its cached jars are present, and Tansu).
TEST_ENGINES ?=

.DEFAULT_GOAL := help
.PHONY: help install run test test-unit chromium lint typecheck schemas bench chaos clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install hookstream with its dev extras

run: $(STAMP) ## local broker (ENGINE=tansu|kafka) + topics + one worker (Ctrl-C stops all)
	$(BIN)/hookstream run --engine $(ENGINE)

test: $(STAMP) ## unit tests, the integration suite on each broker engine, the portal in Chromium
	$(BIN)/python -m pytest tests/unit
	@engines="$(TEST_ENGINES)"; \
	if [ -n "$$HOOKSTREAM_TEST_BROKER" ]; then engines=named; \
	elif [ -z "$$engines" ]; then \
	  reason=$$($(BIN)/python -m app.kafka.brokers.apache); \
	  if [ "$$reason" = ok ]; then engines="kafka tansu"; \
	  else echo "Apache Kafka skipped: $$reason"; engines=tansu; fi; \
	fi; \
	for engine in $$engines; do \
	  echo "== integration suite on $$engine"; \
	  HOOKSTREAM_TEST_ENGINE=$$engine $(BIN)/python -m pytest tests/integration || exit 1; \
	done
	@$(MAKE) --no-print-directory chromium
	@echo "== the account portal in Chromium"
	$(BIN)/python -m pytest tests/browser

chromium: ## Debian's Chromium for the portal's browser tests (apt-get install when missing)
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium; }

test-unit: $(STAMP) ## unit tests only (no broker)
	$(BIN)/python -m pytest tests/unit

lint: $(STAMP) ## ruff check + format check
	$(BIN)/ruff check app tests bench chaos
	$(BIN)/ruff format --check app tests bench chaos

typecheck: $(STAMP) ## mypy --strict
	$(BIN)/mypy app

schemas: $(STAMP) ## regenerate schemas/ (topic values, openapi.json) from the models
	$(BIN)/python -m app.tools.schemas write schemas
	$(BIN)/python -m app.api.spec write schemas/api/openapi.json

bench: $(STAMP) ## the benchmark on ENGINE=tansu|kafka (not part of make test)
	BENCH_ENGINE=$(ENGINE) $(BIN)/python -m bench

chaos: $(STAMP) ## the chaos run on ENGINE=tansu|kafka: seeded kills, joins, stops; counts every event (CHAOS_EVENTS, CHAOS_SEED)
	CHAOS_ENGINE=$(ENGINE) $(BIN)/python -m chaos

clean: ## remove the venv and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache hookstream-data
