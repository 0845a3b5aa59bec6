"""Building the fused kernels: ahead of time from setup.py, or just in time on first use.

``load()`` returns the compiled extension module. It prefers ``kernels._C`` (built by
``QWEN_BUILD_KERNELS=1 pip install --no-build-isolation -e .``) and otherwise compiles the sources
with ``torch.utils.cpp_extension.load`` into a cache directory (``$QWEN_KERNELS_CACHE``, default
``~/.cache/qwen-pretrain/kernels``) keyed by a digest of the sources, flags, torch version and
CPU, so only the first use on a machine pays the compile (about a minute on 2 cores);
``python -m kernels.build`` compiles ahead of that first use. CUDA sources are compiled in only
when torch sees a GPU and a CUDA toolkit is installed.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import platform
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

SOURCE_DIR = Path(__file__).resolve().parent / "csrc"
CPU_SOURCES = ("bindings.cpp", "cpu/rmsnorm.cpp", "cpu/swiglu.cpp", "cpu/rotary.cpp", "cpu/lmhead.cpp")
# cuda/ops.cpp is the tensor side of the CUDA kernels, compiled by the host compiler.
CUDA_SOURCES = ("cuda/ops.cpp", "cuda/rmsnorm.cu", "cuda/swiglu.cu", "cuda/rotary.cu", "cuda/lmhead.cu")
WITH_CUDA_MACRO = "-DQWEN_KERNELS_WITH_CUDA"
# -march=native only for the just-in-time build, which runs on the machine that uses it; the
# ahead-of-time build goes into images that may run on other CPUs.
JIT_CXX_FLAGS = ["-O3", "-march=native", "-fopenmp", "-fno-math-errno", "-fno-trapping-math"]
AOT_CXX_FLAGS = ["-O3", "-fopenmp", "-fno-math-errno", "-fno-trapping-math"]
CUDA_FLAGS = ["-O3", "--use_fast_math"]


class KernelBuildError(RuntimeError):
    """The extension could not be compiled or loaded."""


def cache_root() -> Path:
    configured = os.environ.get("QWEN_KERNELS_CACHE")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "qwen-pretrain" / "kernels"


def cuda_toolkit_usable() -> bool:
    import torch
    from torch.utils.cpp_extension import CUDA_HOME

    return torch.cuda.is_available() and torch.version.cuda is not None and CUDA_HOME is not None


def _cpu_signature() -> str:
    """The CPU feature flags, since -march=native code may not run on another CPU."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return line
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _build_digest(sources: list[Path], flags: list[str]) -> str:
    import torch

    # The compiled sources and the headers beside them (so CUDA edits leave a CPU build cached).
    folders = {path.parent for path in sources} | {SOURCE_DIR}
    headers = [path for folder in folders for path in folder.iterdir() if path.suffix in (".h", ".cuh")]
    digest = hashlib.sha256()
    for path in sorted(set(sources) | set(headers)):
        digest.update(str(path.relative_to(SOURCE_DIR)).encode())
        digest.update(path.read_bytes())
    for item in [*flags, torch.__version__, sys.version, _cpu_signature()]:
        digest.update(item.encode())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class JitTarget:
    """What a just-in-time build on this machine compiles, and where its cached result lives."""

    name: str
    build_dir: Path
    sources: tuple[Path, ...]
    cxx_flags: tuple[str, ...]
    cuda_flags: tuple[str, ...] | None

    @property
    def library(self) -> Path:
        return self.build_dir / f"{self.name}.so"


@functools.cache
def jit_target() -> JitTarget:
    with_cuda = cuda_toolkit_usable()
    sources = [SOURCE_DIR / name for name in CPU_SOURCES + (CUDA_SOURCES if with_cuda else ())]
    cxx_flags = JIT_CXX_FLAGS + ([WITH_CUDA_MACRO] if with_cuda else [])
    cuda_flags = CUDA_FLAGS + [WITH_CUDA_MACRO] if with_cuda else None
    name = f"qwen_kernels_{_build_digest(sources, cxx_flags + (cuda_flags or []))}"
    return JitTarget(name, cache_root() / name, tuple(sources), tuple(cxx_flags),
                     tuple(cuda_flags) if cuda_flags else None)


def _aot_module() -> ModuleType | None:
    try:
        from kernels import _C  # type: ignore[attr-defined]
    except ImportError:
        return None
    return _C


def _import_library(target: JitTarget) -> ModuleType | None:
    """The cached build, imported directly: its name is a digest of everything that went into it,
    so a library that exists is up to date. Skipping torch's loader skips its ninja run and build
    lock, which every process of a multi-rank job would otherwise take in turn."""
    if not target.library.exists():
        return None
    import torch  # noqa: F401  (the library links against torch's shared libraries)

    spec = importlib.util.spec_from_file_location(target.name, target.library)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except ImportError:  # e.g. still being written by another process: let torch's loader wait for it
        return None
    return module


def _jit_build(target: JitTarget) -> ModuleType:
    from torch.utils import cpp_extension

    target.build_dir.mkdir(parents=True, exist_ok=True)
    if not target.library.exists():
        kind = "C++ and CUDA" if target.cuda_flags else "C++ (CPU only)"
        print(f"qwen kernels: compiling the {kind} extension into {target.build_dir} "
              "(first use only, about a minute)...", file=sys.stderr, flush=True)
    try:
        return cpp_extension.load(
            name=target.name,
            sources=[str(s) for s in target.sources],
            extra_cflags=list(target.cxx_flags),
            extra_cuda_cflags=list(target.cuda_flags) if target.cuda_flags else None,
            extra_ldflags=["-fopenmp"],
            build_directory=str(target.build_dir),
            verbose=False,
        )
    except (RuntimeError, OSError, ImportError) as error:
        raise KernelBuildError(
            f"could not build the qwen kernels in {target.build_dir}: {error}. A C++ compiler with OpenMP "
            "is needed (and nvcc for CUDA); set model.kernels: torch to run without them."
        ) from error


def is_built() -> bool:
    """Whether load() would return without compiling: installed ahead of time, or in the cache."""
    return _aot_module() is not None or jit_target().library.exists()


@functools.cache
def load() -> ModuleType:
    """The compiled kernels: the ahead-of-time build if installed, else a cached JIT build."""
    return _aot_module() or _import_library(jit_target()) or _jit_build(jit_target())


def aot_extension():
    """The setuptools extension for setup.py (QWEN_BUILD_KERNELS=1): CUDA too when torch is a CUDA
    build and a toolkit is found."""
    import torch
    from torch.utils.cpp_extension import CUDA_HOME, CppExtension, CUDAExtension

    root = Path(__file__).resolve().parent.parent

    def rel(names: tuple[str, ...]) -> list[str]:  # setuptools wants paths relative to setup.py
        return [str((SOURCE_DIR / name).relative_to(root)) for name in names]

    if torch.version.cuda is not None and CUDA_HOME is not None:
        return CUDAExtension(
            "kernels._C",
            rel(CPU_SOURCES + CUDA_SOURCES),
            extra_compile_args={"cxx": AOT_CXX_FLAGS + [WITH_CUDA_MACRO], "nvcc": CUDA_FLAGS + [WITH_CUDA_MACRO]},
            extra_link_args=["-fopenmp"],
        )
    return CppExtension("kernels._C", rel(CPU_SOURCES), extra_compile_args=AOT_CXX_FLAGS,
                        extra_link_args=["-fopenmp"])


def cuda_object_commands(nvcc: str, out_dir: Path, arch: str = "sm_90",
                         extra_includes: tuple[Path, ...] = ()) -> list[list[str]]:
    """Commands that compile every CUDA source to an object file with the flags of the real build.

    For CI on machines without a GPU (a CPU torch is enough): syntax and API errors in the CUDA
    code fail here instead of on the first GPU run. ``extra_includes`` comes before the torch
    headers (a CPU torch wheel lacks c10/cuda/impl/cuda_cmake_macros.h, which a caller may supply).
    """
    from torch.utils.cpp_extension import COMMON_NVCC_FLAGS, include_paths

    # nvcc hands .cpp files to the host compiler with the CUDA headers on the include path.
    torch_includes = [f"-I{path}" for path in (*extra_includes, *include_paths())]
    commands = []
    for source in CUDA_SOURCES:
        path = SOURCE_DIR / source
        output = str(out_dir / f"{path.stem}{path.suffix.replace('.', '_')}.o")
        common = [nvcc, "-c", str(path), "-o", output, "-std=c++20", "-Xcompiler", "-fPIC"]
        if path.suffix == ".cu":
            commands.append([*common, f"-arch={arch}", *COMMON_NVCC_FLAGS, *CUDA_FLAGS])
        else:
            commands.append([*common, "-O1", WITH_CUDA_MACRO, *torch_includes])
    return commands


if __name__ == "__main__":
    module = load()
    print(f"qwen kernels ready: {module.__file__} (CUDA {'in' if module.built_with_cuda() else 'not in'} this build)")
