"""The kernel sources compile without a GPU: as C++17 (torch before 2.12 builds extensions so, the
NGC images' included), and with the installed torch's own build rules for the CUDA extension
(its -std, nvcc defines, and the default architecture list with PTX). Also: the rotary kernel's
sin/cos are the accurate ones. The CUDA parts are skipped, with the reason, only where nvcc is
not installed."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from torch.utils.cpp_extension import COMMON_NVCC_FLAGS

from qwen_kernels.build import CUDA_FLAGS, CUDA_SOURCES, SOURCE_DIR
from qwen_kernels.compile_check import (CUDA_BUILD_ONLY, CXX17, cxx17_commands, find_cuda_home, torch_header_shim,
                                   write_torch_build)

CUDA_HOME = find_cuda_home()
needs_nvcc = pytest.mark.skipif(CUDA_HOME is None, reason="nvcc not found (no CUDA toolkit): CUDA sources not compiled")


def run_all(commands: list[list[str]]) -> list[str]:
    """Runs the commands two at a time (the machine's cores); the failures' command lines and output."""
    failures = []
    for start in range(0, len(commands), 2):
        batch = commands[start:start + 2]
        running = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for cmd in batch]
        for cmd, proc in zip(batch, running):
            output, _ = proc.communicate(timeout=900)
            if proc.returncode != 0:
                failures.append(f"$ {' '.join(cmd)}\n{output}")
    return failures


@pytest.mark.slow
def test_every_source_compiles_as_cxx17(tmp_path):
    commands = cxx17_commands(tmp_path, CUDA_HOME, torch_header_shim(tmp_path / "shim"))
    assert all(CXX17 in cmd for cmd in commands)
    failures = run_all(commands)
    assert not failures, "\n\n".join(failures)
    if CUDA_HOME is not None:
        kernels = sorted(tmp_path.glob("*.ptx"))
        assert len(kernels) == sum(name.endswith(".cu") for name in CUDA_SOURCES)
        assert all(".entry" in path.read_text() for path in kernels), kernels


@pytest.mark.slow
@needs_nvcc
def test_cuda_build_compiles_with_the_installed_torchs_own_flags(tmp_path):
    targets = write_torch_build(tmp_path, CUDA_HOME, torch_header_shim(tmp_path / "shim"))
    ninja_text = (tmp_path / "build.ninja").read_text()
    # torch's rules, not ours: its own standard flag, and PTX for the newest default architecture.
    assert re.search(r"^cuda_cflags = .*-std=c\+\+\d\d", ninja_text, re.MULTILINE)
    assert "-gencode=arch=compute_90,code=compute_90" in ninja_text
    assert len(targets) == len(CUDA_BUILD_ONLY)
    result = subprocess.run([shutil.which("ninja") or "ninja", "-C", str(tmp_path), "-j", "2", *targets],
                            capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-5000:]
    assert all((tmp_path / target).stat().st_size > 0 for target in targets)


def rotary_ptx(tmp_path, *extra: str) -> str:
    output = tmp_path / f"rotary{len(extra)}.ptx"
    subprocess.run([str(CUDA_HOME / "bin" / "nvcc"), CXX17, "-ptx", "-arch=sm_90", *COMMON_NVCC_FLAGS, *CUDA_FLAGS,
                    *extra, str(SOURCE_DIR / "cuda" / "rotary.cu"), "-o", str(output)], check=True, timeout=600)
    return output.read_text()


@pytest.mark.slow
@needs_nvcc
def test_rotary_kernel_uses_accurate_sin_and_cos(tmp_path):
    approximate = re.compile(r"\b(sin|cos)\.approx\.")
    # The check can see the approximations: --use_fast_math puts them in.
    assert approximate.search(rotary_ptx(tmp_path, "--use_fast_math"))
    assert not approximate.search(rotary_ptx(tmp_path))
