#!/usr/bin/env bash
# Create .venv and install the project into it. Idempotent: a second run installs nothing unless
# setup.py or constraints.txt changed. Torch goes in first (CPU wheel 2.13.0 when no GPU is present)
# so that pip never pulls the multi-GB CUDA build to satisfy the torch requirement of megatron-core
# or deepspeed.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${QWEN_VENV:-.venv}
PYTHON=${PYTHON:-python3}
# The tested versions (see constraints.txt); QWEN_CONSTRAINTS= (empty) takes the newest releases.
CONSTRAINTS=${QWEN_CONSTRAINTS-constraints.txt}

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV" >&2
  "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)

stamp="$VENV/.qwen-installed"
want=$(cat setup.py ${CONSTRAINTS:+"$CONSTRAINTS"} | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi

if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    echo "setup: installing torch (CUDA build)" >&2
    "${PIP[@]}" install -q "torch>=2.6,<2.14"
  else
    echo "setup: installing CPU torch 2.13.0" >&2
    "${PIP[@]}" install -q torch==2.13.0
  fi
fi
echo "setup: installing the project and its dependencies (deepspeed builds from source: a few minutes)" >&2
"${PIP[@]}" install -q --upgrade setuptools wheel
"${PIP[@]}" install -q ${CONSTRAINTS:+-c "$CONSTRAINTS"} -e ".[dev]"
echo "$want" >"$stamp"
echo "setup: done ($VENV)" >&2
