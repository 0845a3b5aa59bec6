# The commands of the README. Each sets up .venv first (idempotent, see scripts/setup.sh).
VENV ?= .venv
CONFIG ?= examples/configs/qwen-tiny.yaml
PYTEST_ARGS ?=
# The venv's tools first: hadolint, and the venv's ninja, so DeepSpeed's JIT-built ops are not
# rebuilt by a system ninja of another version in every process.
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: setup demo train test test-image

setup:
	@bash scripts/setup.sh

# Raw corpus -> data pipeline -> 2-process training -> HF export -> sample -> runs/demo/report.html.
demo: setup
	$(VENV)/bin/python -m pretrain.demo

train: setup
	$(VENV)/bin/qwen-train --config $(CONFIG)

# The Docker image's build takes ~15 minutes on 2 cores: its test runs on its own (CI runs both).
test: setup
	$(VENV)/bin/python -m pytest --ignore=tests/test_docker_image.py $(PYTEST_ARGS)

test-image: setup
	$(VENV)/bin/python -m pytest tests/test_docker_image.py $(PYTEST_ARGS)
