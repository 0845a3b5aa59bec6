"""examples/slurm/pretrain.sbatch, submitted to a real SLURM on this host (tests/support/slurm_cluster.py):
two emulated nodes, one rank on each, qwen-train on CPU over gloo. Without SLURM (and no way to
install it) the tests are skipped with the reason, which pytest -ra prints."""

from __future__ import annotations

import json
import math
import os
import re
import sys
from pathlib import Path

import pytest

from tests.support.slurm_cluster import (  # noqa: F401 (slurm_cluster is a fixture)
    SlurmCluster, SlurmUnavailable, ensure_slurm_installed, free_port, process_running, slurm_cluster,
    start_cluster)

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "examples" / "slurm" / "pretrain.sbatch"
CONFIG = ROOT / "examples" / "configs" / "qwen-tiny.yaml"
TRAIN_STEPS = 4
JOB_TIMEOUT_S = 150


def _submit(cluster: SlurmCluster, tmp_path: Path, env: dict[str, str], args: list[str]) -> tuple[str, str]:
    """Submit the example script on both nodes; return the job's final state and its output."""
    output = tmp_path / "job.out"
    # The job runs the console scripts of the environment running the tests.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    job = cluster.sbatch(SCRIPT, options=["--nodes=2", "--cpus-per-task=2", "--time=3", f"--output={output}",
                                          f"--chdir={ROOT}"],
                         args=args, env={"PATH": path, "CONFIG": str(CONFIG), "MASTER_PORT": str(free_port()), **env})
    state = cluster.wait(job, JOB_TIMEOUT_S)
    return state, output.read_text() if output.exists() else "(no job output)"


def _train(cluster: SlurmCluster, tmp_path: Path, env: dict[str, str]) -> str:
    run = tmp_path / "run"
    overrides = [f"training.train_steps={TRAIN_STEPS}", "training.log_interval=1", "optimizer.warmup_steps=1",
                 f"logging.dir={run}", "logging.tensorboard=false", f"checkpoint.dir={run / 'checkpoints'}",
                 f"data.cache_dir={run / 'data_cache'}"]
    state, log = _submit(cluster, tmp_path, env, overrides)
    assert state == "COMPLETED", f"job ended {state}:\n{log[-4000:]}"
    _assert_trained_once(log, run)
    # sbatch's CPUs reach the step, shared by the ranks of a task (one here).
    assert "2 CPU(s) per task, 2 thread(s) per rank" in log, log[:2000]
    return log


def _assert_trained_once(log: str, run: Path) -> None:
    """Every step logged exactly once (by rank 0 of one 2-rank world, not by two 1-rank runs), then saved."""
    console_steps = [int(step) for step in re.findall(r"^(?:\d+: )?step\s+(\d+)/", log, re.MULTILINE)]
    assert console_steps == list(range(1, TRAIN_STEPS + 1)), log[-4000:]
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics if "loss" in m] == console_steps
    assert all(math.isfinite(m["loss"]) for m in metrics if "loss" in m)
    assert f"checkpoint: saved {run / 'checkpoints'}" in log, log[-4000:]


@pytest.mark.slow
def test_torchrun_launcher_trains_one_rank_per_node(slurm_cluster, tmp_path):
    _train(slurm_cluster, tmp_path, {"LAUNCHER": "torchrun", "GPUS_PER_NODE": "1"})


@pytest.mark.slow
def test_srun_launcher_trains_one_task_per_rank(slurm_cluster, tmp_path):
    # SRUN_ARGS reaches srun (the way a pyxis --container-image would): --label prefixes task ids.
    log = _train(slurm_cluster, tmp_path, {"LAUNCHER": "srun", "SRUN_ARGS": "--label"})
    # Only rank 0 logs (library banners of other ranks are silenced), so the labelled lines are
    # task 0's and the world it reports is the two srun tasks.
    assert re.search(r"^0: .*world size 2 ", log, re.MULTILINE), log[-4000:]


@pytest.mark.slow
def test_unknown_launcher_fails_the_job_with_the_reason(slurm_cluster, tmp_path):
    state, log = _submit(slurm_cluster, tmp_path, {"LAUNCHER": "mpirun"}, [])
    assert state == "FAILED"
    assert "LAUNCHER must be torchrun or srun, not 'mpirun'" in log


@pytest.mark.slow
def test_cluster_stop_ends_its_daemons_and_removes_its_directory(slurm_cluster):
    # A second cluster beside the session's: its own ports and munge socket, then torn down.
    cluster = start_cluster(nodes=("solo",))
    pids = [int(pid_file.read_text().split()[0]) for pid_file in cluster.pid_files]
    assert all(map(process_running, pids))
    assert cluster.node_states() == {"solo": "idle"}
    cluster.stop()
    assert not cluster.root.exists()
    assert len(pids) == 3 and not any(map(process_running, pids))  # munged, slurmctld, slurmd


def test_missing_slurm_that_cannot_be_installed_is_reported_with_the_reason(monkeypatch, tmp_path):
    # What the fixture turns into a skip: no SLURM binaries and no apt-get on PATH.
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SlurmUnavailable, match=r"SLURM is not installed \(no munged.*\) and there is no apt-get"):
        ensure_slurm_installed()
