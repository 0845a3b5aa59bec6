# The two commands of the README. Each sets up .venv first (idempotent, see scripts/setup.sh).
VENV ?= .venv
CONFIG ?= examples/configs/qwen-tiny.yaml
PYTEST_ARGS ?=

.PHONY: setup train test

setup:
	@bash scripts/setup.sh

train: setup
	$(VENV)/bin/qwen-train --config $(CONFIG)

test: setup
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)
