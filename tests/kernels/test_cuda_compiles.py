"""The CUDA sources compile to object files with nvcc, so CI without a GPU catches syntax and
API errors in them. Skipped, with the reason, only where nvcc is not installed."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from kernels.build import cuda_object_commands

# A CPU torch wheel omits this generated header that the c10/cuda headers include; a CUDA wheel
# ships it with this content.
CMAKE_MACROS = "c10/cuda/impl/cuda_cmake_macros.h"
CMAKE_MACROS_TEXT = "#pragma once\n#define C10_CUDA_BUILD_SHARED_LIBS\n"


def nvcc_path() -> str | None:
    return shutil.which("nvcc") or next(
        (str(p) for p in sorted(Path("/usr/local").glob("cuda*/bin/nvcc")) if p.exists()), None)


@pytest.mark.slow
def test_cuda_sources_compile_to_object_files(tmp_path):
    nvcc = nvcc_path()
    if nvcc is None:
        pytest.skip("nvcc not found (no CUDA toolkit installed): CUDA sources not compile-checked")
    extra_includes: tuple[Path, ...] = ()
    torch_include = Path(torch.__file__).parent / "include"
    if not (torch_include / CMAKE_MACROS).exists():
        shim = tmp_path / "shim"
        (shim / CMAKE_MACROS).parent.mkdir(parents=True)
        (shim / CMAKE_MACROS).write_text(CMAKE_MACROS_TEXT)
        extra_includes = (shim,)

    commands = cuda_object_commands(nvcc, tmp_path, extra_includes=extra_includes)
    # Both cores: the host-side file is the slow one.
    running = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
               for cmd in commands]
    failures = []
    for cmd, proc in zip(commands, running):
        output, _ = proc.communicate(timeout=600)
        if proc.returncode != 0:
            failures.append(f"$ {' '.join(cmd)}\n{output}")
    assert not failures, "\n\n".join(failures)
    objects = sorted(p.name for p in tmp_path.glob("*.o"))
    assert len(objects) == len(commands), objects
    assert all((tmp_path / name).stat().st_size > 0 for name in objects)
