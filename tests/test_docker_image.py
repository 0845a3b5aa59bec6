"""The Dockerfile, built and run for real on a private Docker engine (tests/support/docker_engine.py).

The CPU image: the repository's Dockerfile (the recipe of the GPU image too) on a Debian bookworm
base with only Python, torch and every other package from a wheel directory in the build context
(``PIP_NO_INDEX=1``, the air-gapped path). The wheels are made on the host once (deepspeed built
from its source there) and kept with the bootstrapped base in the test cache, so a second run
spends its time on the build itself.

Every command runs the way pyxis/enroot and Singularity run images: another user than root, a
read-only image, no writable HOME, only /tmp and a mounted directory writable; and without a
network, so nothing may need one. Without a Docker engine (no root, no apt-get, no mirror) the
tests are skipped with the reason, which pytest -ra prints.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from tests.support.docker_engine import (DockerEngine, EngineUnavailable, cache_dir, debian_python_rootfs,
                                         import_image, start_engine)
from tests.support.host import process_running, read_pid

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]

ROOT = Path(__file__).resolve().parent.parent
BASE = "qwen-test/debian-python:bookworm"
BASE_WITHOUT_PYTHON = "qwen-test/debian:bookworm"
IMAGE = "qwen-pretrain:cpu-test"
# The CPU wheel: PyPI's torch of that version is the CUDA build.
TORCH = "torch==2.13.0+cpu"
BUILD_TIMEOUT_S = 3000
RUN_TIMEOUT_S = 600
USER = "4242:4242"
# What a Singularity or pyxis container gives a job: its own user, a read-only image, no HOME.
CLUSTER_LIKE = ["--rm", "--network=none", "--read-only", "--tmpfs=/tmp", f"--user={USER}",
                "--env=HOME=/nonexistent", "--shm-size=1g"]
TRAIN_STEPS = 4


@pytest.fixture(scope="module")
def engine() -> Iterator[DockerEngine]:
    try:
        engine = start_engine()
    except EngineUnavailable as reason:
        pytest.skip(f"Docker engine unavailable: {reason}")
    try:
        yield engine
    finally:
        engine.stop()


@pytest.fixture(scope="module")
def bases(engine: DockerEngine) -> None:
    try:
        rootfs = debian_python_rootfs()
    except EngineUnavailable as reason:
        pytest.skip(f"no Debian base image: {reason}")
    import_image(engine, rootfs, BASE)
    import_image(engine, rootfs, BASE_WITHOUT_PYTHON, exclude=[r"^\./usr/bin/python3"])


def _copy_sources(destination: Path) -> None:
    """The repository's top-level entries minus what .dockerignore names (the build applies it fully)."""
    patterns = [line.strip().removeprefix("**/") for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    destination.mkdir(parents=True)
    for entry in ROOT.iterdir():
        if any(fnmatch.fnmatch(entry.name, pattern) for pattern in patterns):
            continue
        if entry.is_dir():
            shutil.copytree(entry, destination / entry.name, symlinks=True)
        else:
            shutil.copy2(entry, destination / entry.name)


def _wheelhouse(sources: Path) -> Path:
    """A wheel of every requirement of the image, from the host's pip configuration, at the tested
    versions (constraints.txt, as `make setup` installs them), cached by the project's requirements.
    Packages published as source (deepspeed) are built here, once, against this interpreter's torch
    (the image's), so the image build only unpacks wheels."""
    requirements = (ROOT / "setup.py").read_bytes() + (ROOT / "constraints.txt").read_bytes()
    key = hashlib.sha256(requirements + TORCH.encode()).hexdigest()[:12]
    wheels = cache_dir() / f"wheels-{key}"
    if wheels.exists():
        return wheels
    partial = cache_dir() / f"wheels-{key}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-build-isolation", "--wheel-dir",
                             str(partial), "-c", str(ROOT / "constraints.txt"), str(sources), TORCH,
                             "setuptools>=64", "wheel", "ninja"],
                            env={**os.environ, "DS_BUILD_OPS": "0"}, stdin=subprocess.DEVNULL, capture_output=True,
                            text=True, timeout=1800)
    if result.returncode != 0:
        pytest.skip(f"pip could not provide the image's wheels: {(result.stderr.strip().splitlines() or ['?'])[-1]}")
    # The image installs the project from its sources, not from this wheel.
    for project_wheel in partial.glob("qwen_pretrain-*.whl"):
        project_wheel.unlink()
    for stale in cache_dir().glob("wheels-*"):
        if stale != partial:
            shutil.rmtree(stale, ignore_errors=True)
    partial.replace(wheels)
    return wheels


def _build(engine: DockerEngine, context: Path, *build_args: str) -> subprocess.CompletedProcess:
    args = [f"--build-arg={arg}" for arg in build_args]
    return engine.docker("build", "--network=host", "--force-rm", *args, "--tag", IMAGE, str(context),
                         timeout=BUILD_TIMEOUT_S)


def _output(result: subprocess.CompletedProcess) -> str:
    return (result.stdout + result.stderr).decode(errors="replace")


@pytest.fixture(scope="module")
def image(engine: DockerEngine, bases: None, tmp_path_factory: pytest.TempPathFactory) -> str:
    context = tmp_path_factory.mktemp("docker") / "context"
    _copy_sources(context)
    wheels = _wheelhouse(context)
    (context / "wheels").mkdir()
    for wheel in wheels.iterdir():
        os.link(wheel, context / "wheels" / wheel.name)
    result = _build(engine, context, f"BASE_IMAGE={BASE}", "WHEEL_DIR=wheels", "PIP_NO_INDEX=1")
    assert result.returncode == 0, _output(result)[-6000:]
    return IMAGE


def _run(engine: DockerEngine, image: str, *command: str, options: tuple[str, ...] = ()) -> str:
    result = engine.docker("run", *CLUSTER_LIKE, *options, image, *command, timeout=RUN_TIMEOUT_S)
    output = _output(result)
    assert result.returncode == 0, f"`{' '.join(command)}` exited {result.returncode}:\n{output[-6000:]}"
    return output


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    """A directory the container's user may write, mounted where the examples put their output."""
    runs = tmp_path / "runs"
    runs.mkdir()
    uid, gid = (int(part) for part in USER.split(":"))
    os.chown(runs, uid, gid)
    return runs


def _mount(runs: Path) -> tuple[str, ...]:
    return (f"--volume={runs}:/workspace/qwen-pretrain/runs",)


def test_help_and_check_need_no_writable_home(engine, image):
    output = _run(engine, image, "sh", "-c",
                  "qwen-train --help && qwen-train --check --config examples/configs/qwen-tiny.yaml")
    assert "usage: qwen-train" in output
    assert "qwen-train: config and data are valid" in output


def test_kernels_are_compiled_into_the_image(engine, image):
    # Imported from the image, not built on first use: there is no compiler or writable cache here.
    output = _run(engine, image, "python", "-c",
                  "import qwen_kernels._C, qwen_kernels.build as b; assert b.load() is qwen_kernels._C; print('C++ kernels', qwen_kernels._C.__file__)")
    assert "C++ kernels /workspace/qwen-pretrain/qwen_kernels/_C" in output


def test_torchrun_trains_two_processes(engine, image, runs):
    overrides = [f"training.train_steps={TRAIN_STEPS}", "training.log_interval=1", "optimizer.warmup_steps=1",
                 "logging.dir=runs/train", "logging.tensorboard=false", "checkpoint.dir=runs/train/checkpoints",
                 "data.cache_dir=runs/cache"]
    # Without a network the container's hostname resolves nowhere, and torchrun's rendezvous would
    # wait 5 minutes to reach itself under that name: it is given the loopback address instead.
    output = _run(engine, image, "torchrun", "--standalone", "--local-addr=127.0.0.1", "--nproc-per-node=2",
                  "--no-python", "qwen-train", "--config", "examples/configs/qwen-tiny.yaml", *overrides,
                  options=_mount(runs))
    assert "world size 2" in output, output[-4000:]
    assert "kernels: fused on cpu" in output, output[-4000:]
    metrics = [json.loads(line) for line in (runs / "train" / "metrics.jsonl").read_text().splitlines()]
    losses = {m["step"]: m["loss"] for m in metrics if "loss" in m}
    assert sorted(losses) == list(range(1, TRAIN_STEPS + 1)) and all(map(math.isfinite, losses.values()))
    assert "checkpoint: saved runs/train/checkpoints" in output, output[-4000:]


def test_data_pipeline_runs_on_the_shipped_sample(engine, image, runs):
    _run(engine, image, "qwen-data", "pipeline", "--config", "examples/data/pipeline.yaml", "--output",
         "runs/data", "--no-progress", options=_mount(runs))
    summary = json.loads((runs / "data" / "pipeline_summary.json").read_text())
    assert summary, "empty pipeline summary"
    assert all((runs / "data" / "tokenize" / source / "text_document.idx").exists() for source in ("modules", "more"))


def _bad_build(engine: DockerEngine, tmp_path: Path, *build_args: str) -> str:
    context = tmp_path / "context"
    _copy_sources(context)
    (context / "wheels").mkdir()
    (context / "wheels" / "README").write_text("no torch wheel here\n")
    result = _build(engine, context, *build_args)
    assert result.returncode != 0
    return _output(result)


def test_base_without_python_fails_before_installing_anything(engine, bases, tmp_path):
    output = _bad_build(engine, tmp_path, f"BASE_IMAGE={BASE_WITHOUT_PYTHON}", "WHEEL_DIR=wheels")
    assert "error: BASE_IMAGE has no python3; use an image with Python 3.10 or newer" in output, output[-3000:]
    assert "apt-get" not in output and "Collecting" not in output, output[-3000:]


def test_wheel_dir_without_torch_fails_before_installing_anything(engine, bases, tmp_path):
    output = _bad_build(engine, tmp_path, f"BASE_IMAGE={BASE}", "WHEEL_DIR=wheels")
    assert "error: BASE_IMAGE has no torch and WHEEL_DIR=wheels holds no torch-*.whl" in output, output[-3000:]
    assert "apt-get" not in output and "Collecting" not in output, output[-3000:]


def _network_state() -> tuple[list[str], str]:
    iptables = subprocess.run(["iptables-save"], capture_output=True, text=True, check=False).stdout
    rules = "\n".join(line for line in iptables.splitlines() if not line.startswith(("#", ":")))
    return sorted(os.listdir("/sys/class/net")), rules


def test_an_engine_adds_no_network_state_and_stop_ends_only_its_daemon(engine):
    # A second engine beside the module's: no bridge, no iptables rules; stopped, it is gone and
    # the first one still answers.
    before = _network_state()
    second = start_engine()
    pid = read_pid(second.pid_file)
    assert process_running(pid)
    assert _network_state() == before
    second.stop()
    assert not process_running(pid) and not second.root.exists()
    assert engine.docker("info", timeout=30).returncode == 0
