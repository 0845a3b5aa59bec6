#!/bin/sh
# The Dockerfile's build stage, run from the copied build context. Checks the base image first (so a
# base that cannot work fails in seconds, with one line), then installs the project into a virtual
# environment $VENV and compiles the kernels ahead of time, then removes what the final stage must
# not carry. Build arguments it reads (as environment variables):
#   VENV                  where the environment goes (the Dockerfile's ARG VENV)
#   WHEEL_DIR             a directory of wheels in the build context, or empty: pip's --find-links;
#                         torch is installed from it when the base image has none
#   PIP_NO_INDEX          1: pip reads only WHEEL_DIR (air-gapped); PIP_INDEX_URL: a package mirror
#   TORCH_CUDA_ARCH_LIST  GPU architectures of the CUDA kernels (CUDA bases only)
set -eu

fail() {
    echo "error: $*" >&2
    exit 1
}

command -v python3 >/dev/null 2>&1 ||
    fail "BASE_IMAGE has no python3; use an image with Python 3.10 or newer (an NGC PyTorch image, python:3.11-slim, Debian or Ubuntu with python3)"
python3 -c 'import sys; sys.exit(sys.version_info < (3, 10))' ||
    fail "BASE_IMAGE has $(python3 -V 2>&1); the project needs Python 3.10 or newer"

if [ -n "${WHEEL_DIR:-}" ]; then
    [ -d "$WHEEL_DIR" ] || fail "WHEEL_DIR=$WHEEL_DIR is not a directory of the build context"
    WHEEL_DIR=$(realpath "$WHEEL_DIR")
    case "$WHEEL_DIR" in
        "$PWD"/*) ;;
        *) fail "WHEEL_DIR=$WHEEL_DIR must be a subdirectory of the build context (it is removed from the image)" ;;
    esac
    set -- --find-links "$WHEEL_DIR"
fi
if python3 -c 'import torch' 2>/dev/null; then
    torch_wheel=""
elif [ -z "${WHEEL_DIR:-}" ]; then
    fail "BASE_IMAGE has no torch; put a torch wheel for its Python into a directory of the build context and pass --build-arg WHEEL_DIR=<that directory> (CPU wheels: https://download.pytorch.org/whl/cpu)"
elif ! ls "$WHEEL_DIR"/torch-*.whl >/dev/null 2>&1; then
    fail "BASE_IMAGE has no torch and WHEEL_DIR=${WHEEL_DIR#"$PWD"/} holds no torch-*.whl (CPU wheels: https://download.pytorch.org/whl/cpu)"
else
    torch_wheel=yes
fi

# What compiling the kernels needs, installed only when the base image lacks it. Only the build
# stage has these; the final image keeps the base image's own packages.
missing=""
command -v c++ >/dev/null 2>&1 || missing="$missing g++"
python3 -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' ||
    missing="$missing python3-dev"
python3 -m pip --version >/dev/null 2>&1 || python3 -c 'import ensurepip' 2>/dev/null || missing="$missing python3-venv"
if [ -n "$missing" ]; then
    command -v apt-get >/dev/null 2>&1 || fail "BASE_IMAGE lacks$missing and has no apt-get to install it"
    apt-get update -q
    # shellcheck disable=SC2086  # one word per package
    DEBIAN_FRONTEND=noninteractive apt-get install -q -y --no-install-recommends $missing
fi

# The environment sees the base image's site-packages: an NGC torch (and apex, flash-attn, ...) is
# used, never reinstalled. Without pip in the base, the environment gets its own (ensurepip).
if python3 -m pip --version >/dev/null 2>&1; then
    python3 -m venv --system-site-packages --without-pip "$VENV"
else
    python3 -m venv --system-site-packages "$VENV"
fi
PATH=$VENV/bin:$PATH
export PATH
if [ -n "$torch_wheel" ]; then
    # torch itself only from WHEEL_DIR (PyPI's is the CUDA build), its dependencies from anywhere.
    python -m pip install --no-index --find-links "$WHEEL_DIR" --no-deps torch
    python -m pip install "$@" torch
fi
installed_torch() {
    python -c 'import importlib.metadata as metadata; print(metadata.version("torch"))'
}
torch_version=$(installed_torch)

# --no-build-isolation: deepspeed and the kernels build against this torch, not a PyPI one, so the
# build tools go in first. NGC's PIP_CONSTRAINT file pins its torch; the check below catches any
# other base whose torch the project's requirements would replace.
python -m pip install "$@" "setuptools>=64" wheel ninja
# Editable, so examples/ and the compiled kernels sit next to the sources in the working directory.
# DeepSpeed without prebuilt C++ ops: training uses none (on CPU, pretrain/parallel/cpu_compat.py keeps
# its backend from building one at start-up) except the CPU Adam of parallel.offload_optimizer, which
# DeepSpeed compiles on first use (docs/launching.md).
DS_BUILD_OPS=0 QWEN_BUILD_KERNELS=1 python -m pip install --no-build-isolation "$@" -e .

python -c 'import qwen_kernels._C' || fail "the fused kernels did not compile into qwen_kernels._C (see the compiler output above)"
[ "$(installed_torch)" = "$torch_version" ] ||
    fail "installing the project replaced torch $torch_version; pin it in the base image's pip constraints"

# Bytecode now: a read-only container (Singularity, enroot) cannot write it at run time.
python -m compileall -q foundation pretrain tools qwen_kernels
rm -rf build ./*.egg-info "${WHEEL_DIR:-/nonexistent}"
