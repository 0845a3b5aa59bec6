"""Building the fused kernels: ahead of time from setup.py, or just in time on first use.

``load()`` returns the compiled extension module. It prefers ``qwen_kernels._C`` (built by
``QWEN_BUILD_KERNELS=1 pip install --no-build-isolation -e .``) and otherwise compiles the sources
with ``torch.utils.cpp_extension.load`` into a cache directory (``$QWEN_KERNELS_CACHE``, default
``~/.cache/qwen-pretrain/kernels``) keyed by a digest of the sources, flags, torch version and
CPU (and, with CUDA, the architectures and the CUDA version), so only the first use on a machine
pays the compile (about a minute on 2 cores); ``python -m qwen_kernels.build`` compiles ahead of that
first use. CUDA sources are compiled in only when torch sees a GPU and a CUDA toolkit is installed.
Ranks that load at once build once: one holds an exclusive lock on the cache folder while it
compiles (the kernel drops it if that rank dies), the others wait on it and import the result.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import importlib.util
import os
import platform
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

SOURCE_DIR = Path(__file__).resolve().parent / "csrc"
CPU_SOURCES = ("bindings.cpp", "cpu/rmsnorm.cpp", "cpu/swiglu.cpp", "cpu/rotary.cpp", "cpu/lmhead.cpp")
# cuda/ops.cpp is the tensor side of the CUDA kernels, compiled by the host compiler.
CUDA_SOURCES = ("cuda/ops.cpp", "cuda/rmsnorm.cu", "cuda/swiglu.cu", "cuda/rotary.cu", "cuda/lmhead.cu")
WITH_CUDA_MACRO = "-DQWEN_KERNELS_WITH_CUDA"
# -march=native only for the just-in-time build, which runs on the machine that uses it; the
# ahead-of-time build goes into images that may run on other CPUs. -g0 there: setuptools starts
# from Python's own flags, which ask for debug info (a third of the compile time, 25x the objects).
JIT_CXX_FLAGS = ["-O3", "-march=native", "-fopenmp", "-fno-math-errno", "-fno-trapping-math"]
AOT_CXX_FLAGS = ["-O3", "-g0", "-fopenmp", "-fno-math-errno", "-fno-trapping-math"]
# No --use_fast_math: it turns the rotary kernel's sin/cos into approximations whose error grows
# with the angle (past bf16 resolution near position 32k). The kernels ask for the fast
# intrinsics where they want them (__expf in common.cuh).
CUDA_FLAGS = ["-O3"]
# For builds that see no GPU (images, CI): Ampere and Hopper machine code, and Hopper PTX that
# newer GPUs compile at load time. TORCH_CUDA_ARCH_LIST overrides it, as it does for torch.
DEFAULT_CUDA_ARCH_LIST = "8.0;9.0+PTX"
ARCH_LIST_VARIABLE = "TORCH_CUDA_ARCH_LIST"
# Held (flock) by the process that compiles into a cache folder.
BUILD_LOCK = "qwen-build.lock"
# The lock file torch's loader (FileBaton) leaves in the build folder when its process is killed.
TORCH_BUILD_LOCK = "lock"


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


def visible_cuda_arch_list() -> str:
    """The architectures of the visible GPUs, as torch would pick them: each clamped to the newest
    one this torch was built for, PTX of the highest for GPUs newer than that."""
    import torch

    built = [tuple(divmod(int(re.sub(r"\D", "", arch)), 10)) for arch in torch.cuda.get_arch_list()
             if arch.startswith("sm_")]
    newest = max(built, default=(9, 0))
    capabilities = sorted({min(torch.cuda.get_device_capability(i), newest) for i in range(torch.cuda.device_count())})
    return ";".join(f"{major}.{minor}" for major, minor in capabilities) + "+PTX"


def cuda_arch_list(default: str) -> str:
    """TORCH_CUDA_ARCH_LIST if set, else ``default``."""
    return os.environ.get(ARCH_LIST_VARIABLE) or default


@contextlib.contextmanager
def arch_list_for_torch(arch_list: str) -> Iterator[None]:
    """torch's extension builder takes the architectures from TORCH_CUDA_ARCH_LIST only: set it for
    the duration of a build, so the build compiles for the list that keys its cache folder."""
    previous = os.environ.get(ARCH_LIST_VARIABLE)
    os.environ[ARCH_LIST_VARIABLE] = arch_list
    try:
        yield
    finally:
        if previous is None:
            del os.environ[ARCH_LIST_VARIABLE]
        else:
            os.environ[ARCH_LIST_VARIABLE] = previous


def nvcc_version(cuda_home: str) -> str:
    """nvcc's full version (e.g. ``V13.0.88``): code built by one toolkit may not load with another."""
    output = subprocess.run([str(Path(cuda_home) / "bin" / "nvcc"), "--version"], capture_output=True,
                            text=True, check=False).stdout
    found = re.search(r"\bV(\d+(?:\.\d+)+)", output)
    return found.group(0) if found else output.strip()


def _build_digest(sources: list[Path], flags: list[str], toolchain: list[str]) -> str:
    """A digest of the sources, their headers, the flags, and ``toolchain`` (what else decides the
    binary: torch, Python, CPU, and with CUDA the architectures and the CUDA versions)."""
    import torch

    # The compiled sources and the headers beside them (so CUDA edits leave a CPU build cached).
    folders = {path.parent for path in sources} | {SOURCE_DIR}
    headers = [path for folder in folders for path in folder.iterdir() if path.suffix in (".h", ".cuh")]
    digest = hashlib.sha256()
    for path in sorted(set(sources) | set(headers)):
        digest.update(str(path.relative_to(SOURCE_DIR)).encode())
        digest.update(path.read_bytes())
    for item in [*flags, *toolchain, torch.__version__, sys.version, _cpu_signature()]:
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
    cuda_arch_list: str | None  # TORCH_CUDA_ARCH_LIST of the CUDA build

    @property
    def library(self) -> Path:
        return self.build_dir / f"{self.name}.so"


@functools.cache
def jit_target() -> JitTarget:
    import torch

    with_cuda = cuda_toolkit_usable()
    sources = [SOURCE_DIR / name for name in CPU_SOURCES + (CUDA_SOURCES if with_cuda else ())]
    cxx_flags = JIT_CXX_FLAGS + ([WITH_CUDA_MACRO] if with_cuda else [])
    cuda_flags = CUDA_FLAGS + [WITH_CUDA_MACRO] if with_cuda else None
    arch_list = None
    toolchain: list[str] = []
    if with_cuda:
        from torch.utils.cpp_extension import CUDA_HOME

        arch_list = cuda_arch_list(visible_cuda_arch_list())
        toolchain = [arch_list, torch.version.cuda, nvcc_version(CUDA_HOME)]
    name = f"qwen_kernels_{_build_digest(sources, cxx_flags + (cuda_flags or []), toolchain)}"
    return JitTarget(name, cache_root() / name, tuple(sources), tuple(cxx_flags),
                     tuple(cuda_flags) if cuda_flags else None, arch_list)


def _aot_module() -> ModuleType | None:
    try:
        from qwen_kernels import _C  # type: ignore[attr-defined]
    except ImportError:
        return None
    return _C


def _import_library(target: JitTarget) -> ModuleType | None:
    """The cached build, imported directly: its name is a digest of everything that went into it,
    so a library that exists is up to date. Skipping torch's loader skips its ninja run and its
    build lock. None if there is none, or one that does not import (cut short by a killed build)."""
    if not target.library.exists():
        return None
    import torch  # noqa: F401  (the library links against torch's shared libraries)

    spec = importlib.util.spec_from_file_location(target.name, target.library)
    try:
        module = importlib.util.module_from_spec(spec)  # an extension module is loaded here
        spec.loader.exec_module(module)
    except ImportError:
        return None
    return module


@contextlib.contextmanager
def _locked(build_dir: Path, mode: int) -> Iterator[None]:
    """An flock on the cache folder: shared to import, exclusive to compile. Not a lock file: the
    kernel releases it when its holder dies, so a rank killed mid-build blocks nobody after it."""
    with open(build_dir / BUILD_LOCK, "a") as handle:
        fcntl.flock(handle, mode)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _load_jit(target: JitTarget) -> ModuleType:
    """The cached build, compiled first if needed. Ranks that start together compile once: one
    compiles, the others wait for its lock and import what it wrote, never a half-written file."""
    target.build_dir.mkdir(parents=True, exist_ok=True)
    with _locked(target.build_dir, fcntl.LOCK_SH):
        module = _import_library(target)
    if module is not None:
        return module
    with _locked(target.build_dir, fcntl.LOCK_EX):
        module = _import_library(target)  # compiled by the rank this one waited for
        if module is not None:
            return module
        # Anything here now was left by a builder that died, since only the lock's holder writes:
        # torch's lock file would make its loader wait forever, and a library a killed linker cut
        # short does not import.
        (target.build_dir / TORCH_BUILD_LOCK).unlink(missing_ok=True)
        target.library.unlink(missing_ok=True)
        return _compile(target)


def _compile(target: JitTarget) -> ModuleType:
    from torch.utils import cpp_extension

    kind = "C++ and CUDA" if target.cuda_flags else "C++ (CPU only)"
    print(f"qwen kernels: compiling the {kind} extension into {target.build_dir} "
          "(first use only, about a minute)...", file=sys.stderr, flush=True)
    arch = arch_list_for_torch(target.cuda_arch_list) if target.cuda_arch_list else contextlib.nullcontext()
    try:
        with arch:
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
    return _aot_module() or _load_jit(jit_target())


def aot_extension():
    """The setuptools extension for setup.py (QWEN_BUILD_KERNELS=1): CUDA too when torch is a CUDA
    build and a toolkit is found."""
    import torch
    from torch.utils.cpp_extension import CUDA_HOME, CppExtension, CUDAExtension

    root = Path(__file__).resolve().parent.parent

    def rel(names: tuple[str, ...]) -> list[str]:  # setuptools wants paths relative to setup.py
        return [str((SOURCE_DIR / name).relative_to(root)) for name in names]

    if torch.version.cuda is not None and CUDA_HOME is not None:
        # BuildExtension reads the architectures from the environment when it compiles, later in
        # this same setup.py process.
        os.environ[ARCH_LIST_VARIABLE] = cuda_arch_list(DEFAULT_CUDA_ARCH_LIST)
        return CUDAExtension(
            "qwen_kernels._C",
            rel(CPU_SOURCES + CUDA_SOURCES),
            extra_compile_args={"cxx": AOT_CXX_FLAGS + [WITH_CUDA_MACRO], "nvcc": CUDA_FLAGS + [WITH_CUDA_MACRO]},
            extra_link_args=["-fopenmp"],
        )
    return CppExtension("qwen_kernels._C", rel(CPU_SOURCES), extra_compile_args=AOT_CXX_FLAGS,
                        extra_link_args=["-fopenmp"])


if __name__ == "__main__":
    module = load()
    print(f"qwen kernels ready: {module.__file__} (CUDA {'in' if module.built_with_cuda() else 'not in'} this build)")
