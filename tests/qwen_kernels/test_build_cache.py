"""The just-in-time build's cache: what a rank killed mid-build leaves behind does not block the
next load, and the cache key moves with the CUDA toolchain. A one-function pybind11 module stands
in for the kernels so that each build takes seconds."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from qwen_kernels import build

SOURCE = """#include <pybind11/pybind11.h>
PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) { m.def("answer", [] { return 42; }); }
"""


def small_target(tmp_path, name: str) -> build.JitTarget:
    source = tmp_path / f"{name}.cpp"
    source.write_text(SOURCE)
    return build.JitTarget(name, tmp_path / "cache" / name, (source,), ("-O0",), None, None)


@pytest.mark.timeout(300)  # without the clean-up, torch's loader waits on its lock file forever
def test_a_build_killed_mid_way_leaves_nothing_that_blocks_the_next_load(tmp_path):
    target = small_target(tmp_path, "qwen_cache_test_killed")
    target.build_dir.mkdir(parents=True)
    # What a rank killed during its build leaves: torch's lock file and a library cut short.
    (target.build_dir / build.TORCH_BUILD_LOCK).write_text("")
    target.library.write_bytes(b"\x7fELF cut short")
    # ... and it held the build lock until it died.
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, sys, time; f = open(sys.argv[1], 'a'); fcntl.flock(f, fcntl.LOCK_EX); "
        "print('held', flush=True); time.sleep(600)"), str(target.build_dir / build.BUILD_LOCK)],
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    holder.kill()
    holder.wait()

    module = build._load_jit(target)
    assert module.answer() == 42
    assert not (target.build_dir / build.TORCH_BUILD_LOCK).exists()


@pytest.mark.timeout(300)
def test_a_load_waits_for_the_rank_that_is_building_then_imports_its_result(tmp_path):
    target = small_target(tmp_path, "qwen_cache_test_waits")
    target.build_dir.mkdir(parents=True)
    builder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, sys, time; f = open(sys.argv[1], 'a'); fcntl.flock(f, fcntl.LOCK_EX); "
        "print('building', flush=True); time.sleep(2); open(sys.argv[2], 'w').write('not a library')"),
        str(target.build_dir / build.BUILD_LOCK), str(tmp_path / "builder-done")], stdout=subprocess.PIPE, text=True)
    assert builder.stdout.readline().strip() == "building"
    module = build._load_jit(target)
    builder.wait()
    # The load went ahead only once the builder had let go of the lock.
    assert (tmp_path / "builder-done").exists()
    assert module.answer() == 42


def test_the_cache_key_includes_the_architectures_and_cuda_versions():
    sources = [build.SOURCE_DIR / name for name in build.CPU_SOURCES]
    keys = {build._build_digest(sources, build.JIT_CXX_FLAGS, toolchain) for toolchain in (
        ["9.0+PTX", "12.8", "V12.8.93"], ["8.0;9.0+PTX", "12.8", "V12.8.93"],
        ["9.0+PTX", "13.0", "V12.8.93"], ["9.0+PTX", "12.8", "V13.0.88"])}
    assert len(keys) == 4
