# hookstream — every target bootstraps .venv when it is missing.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install run test test-unit lint typecheck schemas bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install hookstream with its dev extras

run: $(STAMP) ## embedded broker + topics + one worker (Ctrl-C stops all)
	$(BIN)/hookstream run

test: $(STAMP) ## unit + integration tests (starts its own broker)
	$(BIN)/python -m pytest

test-unit: $(STAMP) ## unit tests only (no broker)
	$(BIN)/python -m pytest tests/unit

lint: $(STAMP) ## ruff check + format check
	$(BIN)/ruff check app tests bench
	$(BIN)/ruff format --check app tests bench

typecheck: $(STAMP) ## mypy --strict
	$(BIN)/mypy app

schemas: $(STAMP) ## regenerate schemas/ from the models
	$(BIN)/python -m app.tools.schemas write schemas

bench: $(STAMP) ## the benchmark (not part of make test)
	$(BIN)/python -m bench

clean: ## remove the venv and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache hookstream-data
