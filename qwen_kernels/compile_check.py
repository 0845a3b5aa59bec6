"""Compile checks of the kernel sources for machines without a GPU (CI): a CPU torch, a host C++
compiler and nvcc are enough. Syntax, API and language-standard errors then fail in CI instead of
in a user's ``pip install`` or first GPU run. Two builds, since the sources meet both in the field:

- ``cxx17_commands``: every source as C++17, the standard torch builds extensions in before 2.12
  (NGC 25.06's torch 2.8 among them), whatever standard the installed torch uses.
- ``write_torch_build``: torch's own build file for the CUDA extension, written by the installed
  torch's extension builder, so its ``-std``, its nvcc defines and its architecture flags (here
  from ``DEFAULT_CUDA_ARCH_LIST``) are the ones checked. Its object files are built, not its link,
  which needs torch's CUDA libraries. The C++-only sources are built with torch's flags by every
  just-in-time build (``qwen_kernels.build.load``); this adds what only the CUDA build compiles.
"""

from __future__ import annotations

import inspect
import os
import re
import shutil
import sysconfig
from pathlib import Path

from qwen_kernels.build import (AOT_CXX_FLAGS, CPU_SOURCES, CUDA_FLAGS, CUDA_SOURCES, DEFAULT_CUDA_ARCH_LIST,
                           SOURCE_DIR, WITH_CUDA_MACRO, arch_list_for_torch, cuda_arch_list)

CXX17 = "-std=c++17"
EXTENSION_NAME = "qwen_kernels_check"
# Of the C++ sources, the one the CUDA build compiles differently (its CUDA bindings): the others
# are the same files as in the C++-only build.
CUDA_BUILD_ONLY = ("bindings.cpp", *CUDA_SOURCES)
# The C++ flags of the ahead-of-time build at -O0: what torch adds is under check here, and
# optimizing the host side of ops.cpp and bindings.cpp would double the check's time.
CHECK_CXX_FLAGS = ["-O0", *(flag for flag in AOT_CXX_FLAGS if not flag.startswith("-O")), WITH_CUDA_MACRO]
# A CPU torch wheel omits this generated header that the c10/cuda headers include; a CUDA wheel
# ships it with this content.
CMAKE_MACROS = "c10/cuda/impl/cuda_cmake_macros.h"
CMAKE_MACROS_TEXT = "#pragma once\n#define C10_CUDA_BUILD_SHARED_LIBS\n"


def find_cuda_home() -> Path | None:
    """$CUDA_HOME, else the toolkit folder of the nvcc on PATH or under /usr/local. Found from the
    folder rather than from ``which nvcc``, which may be a wrapper script outside the toolkit."""
    candidates = [os.environ.get("CUDA_HOME"), "/usr/local/cuda", *sorted(map(str, Path("/usr/local").glob("cuda-*")))]
    nvcc = shutil.which("nvcc")
    if nvcc:
        candidates.append(str(Path(nvcc).resolve().parent.parent))
    for candidate in candidates:
        if candidate and (Path(candidate) / "bin" / "nvcc").exists() and (Path(candidate) / "include" / "cuda.h").exists():
            return Path(candidate)
    return None


def torch_header_shim(folder: Path) -> tuple[Path, ...]:
    """Include folders to put before torch's: the CMake macros header where the torch wheel lacks it."""
    import torch

    if (Path(torch.__file__).parent / "include" / CMAKE_MACROS).exists():
        return ()
    (folder / CMAKE_MACROS).parent.mkdir(parents=True, exist_ok=True)
    (folder / CMAKE_MACROS).write_text(CMAKE_MACROS_TEXT)
    return (folder,)


def cxx17_commands(out_dir: Path, cuda_home: Path | None, extra_includes: tuple[Path, ...] = ()) -> list[list[str]]:
    """Commands compiling every source as C++17: the C++ sources with the host compiler torch uses,
    through its front end (templates instantiated, no code generated: the torch build below does
    that); the CUDA kernels with nvcc, to PTX files in ``out_dir``. The CUDA sources are left out
    when ``cuda_home`` is None. The CUDA build's defines are on, so the CUDA bindings are checked."""
    from torch.utils.cpp_extension import COMMON_NVCC_FLAGS, get_cxx_compiler, include_paths

    kernels = [name for name in CUDA_SOURCES if name.endswith(".cu")] if cuda_home else []
    host_sources = [*CPU_SOURCES, *(name for name in CUDA_SOURCES if cuda_home and name not in kernels)]
    include_dirs = [*extra_includes, *include_paths(), sysconfig.get_path("include"),
                    *([cuda_home / "include"] if cuda_home else [])]
    host = [get_cxx_compiler(), CXX17, "-fsyntax-only", "-fopenmp", WITH_CUDA_MACRO,
            f"-DTORCH_EXTENSION_NAME={EXTENSION_NAME}", *(f"-I{path}" for path in include_dirs)]
    commands = [[*host, str(SOURCE_DIR / name)] for name in host_sources]
    for name in kernels:
        commands.append([str(cuda_home / "bin" / "nvcc"), CXX17, "-ptx", "-arch=sm_80", *COMMON_NVCC_FLAGS,
                         *CUDA_FLAGS, str(SOURCE_DIR / name), "-o", str(out_dir / (Path(name).stem + ".ptx"))])
    return commands


def write_torch_build(build_dir: Path, cuda_home: Path, extra_includes: tuple[Path, ...] = ()) -> list[str]:
    """Writes torch's ``build.ninja`` for the CUDA extension into ``build_dir`` and returns the
    object files (ninja targets) of ``CUDA_BUILD_ONLY``.

    The writer is torch's private ``_write_ninja_file_to_build_library``, the step of
    ``cpp_extension.load`` that turns the installed torch's rules into compiler command lines: no
    public API gives those lines without also linking. A CPU torch sets no CUDA_HOME, so the
    toolkit is handed to it for the duration."""
    from torch.utils import cpp_extension

    writer = cpp_extension._write_ninja_file_to_build_library
    arguments = dict(path=str(build_dir / "build.ninja"), name=EXTENSION_NAME,
                     sources=[str(SOURCE_DIR / name) for name in CPU_SOURCES + CUDA_SOURCES],
                     extra_cflags=CHECK_CXX_FLAGS, extra_cuda_cflags=CUDA_FLAGS + [WITH_CUDA_MACRO],
                     extra_ldflags=["-fopenmp"], extra_include_paths=[str(path) for path in extra_includes],
                     with_cuda=True, is_standalone=False)
    if "with_sycl" in inspect.signature(writer).parameters:  # torch >= 2.7
        arguments.update(extra_sycl_cflags=[], with_sycl=False)
    build_dir.mkdir(parents=True, exist_ok=True)
    previous_home = cpp_extension.CUDA_HOME
    cpp_extension.CUDA_HOME = str(cuda_home)
    try:
        with arch_list_for_torch(cuda_arch_list(DEFAULT_CUDA_ARCH_LIST)):
            writer(**arguments)
    finally:
        cpp_extension.CUDA_HOME = previous_home
    ninja_text = (build_dir / "build.ninja").read_text()
    targets = []
    for source in CUDA_BUILD_ONLY:
        found = re.search(rf"^build (\S+\.o): \w+ {re.escape(str(SOURCE_DIR / source))}$", ninja_text, re.MULTILINE)
        if found is None:
            raise RuntimeError(f"torch's build.ninja in {build_dir} has no object for {source}")
        targets.append(found.group(1))
    return targets
