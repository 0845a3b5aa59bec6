"""``qwen-data --executor slurm`` on a real SLURM (the local two-node cluster of tests/support).

Every stage and the pipeline, submitted as job arrays of 4 tasks, give the same output as local
runs with 1 and 2 workers; a pipeline with one array task cancelled (scancel) finishes after that
task is resubmitted alone, with the same output; a rerun with another task count is refused.
Skipped, with the reason, when SLURM can neither be found nor installed. And the example wrapper
(examples/slurm/data_pipeline.sh) passes ``qwen-data pipeline`` options it accepts.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.slurm_cluster import slurm_cluster  # noqa: F401 (a fixture)
from tests.tools.stage_jobs import JOBS, SPLIT_BYTES, STAGE_ARGS, outputs, pipeline_yaml, write_mixed_corpus
from tools.executor.local import LocalExecutor
from tools.executor.options import SlurmOptions, executor_config
from tools.pipeline.cli import add_arguments as pipeline_arguments

ROOT = Path(__file__).resolve().parents[2]
QWEN_DATA = str(Path(sys.executable).parent / "qwen-data")
SLURM = ["--executor", "slurm", "--tasks", "4", "--time", "20", "--poll-interval", "1"]
FOLLOW_TIMEOUT_S = 1500
CANCELLED_STEP = "dedup-exact.index"  # in the pipeline: an array step in its middle
CANCELLED_TASK = 2


def command(corpus: Path, name: str, output: Path, executor: list[str] = SLURM) -> list[str]:
    if name == "pipeline":
        return [QWEN_DATA, "pipeline", "--config", str(pipeline_yaml(corpus, 1)), "--output", str(output),
                "--no-progress", *executor]
    args = [arg.replace("BENCH", str(corpus / "bench.jsonl")) for arg in STAGE_ARGS[name]]
    return [QWEN_DATA, *args, "--input", str(corpus / "in"), "--output", str(output), "--split-bytes",
            str(SPLIT_BYTES), "--no-progress", *executor]


def run(cluster, argv: list[str], timeout: float) -> subprocess.CompletedProcess:
    env = {**cluster.env, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def logs(output: Path) -> str:
    return "\n".join(p.read_text()[-1500:] for p in sorted((output / "slurm" / "logs").glob("*.log"))[-6:])


def step_index(output: Path, step: str) -> int:
    [script] = (output / "slurm").glob(f"*-{step}.sbatch")
    return int(script.name.split("-")[0]) - 1


def submissions(output: Path, index: int) -> list[list[int]]:
    state = json.loads((output / "slurm" / "state.json").read_text())
    return [s["tasks"] for s in state["submissions"] if s["step"] == index]


@pytest.mark.slow
@pytest.mark.timeout(3600)  # seven job chains on a two-node cluster of one machine (~10 min idle)
def test_every_stage_and_the_pipeline_on_4_slurm_tasks_match_local_runs_even_with_a_task_cancelled(
        slurm_cluster, tmp_path):
    corpus = tmp_path / "corpus"
    write_mixed_corpus(corpus)
    runs = {**{name: name for name in JOBS}, "pipeline, task cancelled": "pipeline"}
    for label, name in runs.items():  # each command returns once its jobs are submitted, with their ids
        output = tmp_path / "slurm" / label
        submitted = run(slurm_cluster, command(corpus, name, output), 300)
        assert submitted.returncode == 0, submitted.stderr
        assert "submitted" in submitted.stderr and "job " in submitted.stderr, submitted.stderr
        last = json.loads((output / "slurm" / "state.json").read_text())["submissions"][-1]["job_id"]
        assert slurm_cluster.job_state(last) in ("PENDING", "RUNNING"), "the command waited for its jobs"
    cancelled = tmp_path / "slurm" / "pipeline, task cancelled"
    index = step_index(cancelled, CANCELLED_STEP)
    job_id = json.loads((cancelled / "slurm" / "state.json").read_text())["submissions"]
    job_id = next(s["job_id"] for s in job_id if s["step"] == index)
    slurm_cluster.command("scancel", f"{job_id}_{CANCELLED_TASK}")

    local = {}
    for name in JOBS:  # while SLURM works: the same jobs locally, on 1 and on 2 workers
        local[name] = []
        for workers in (1, 2):
            output = tmp_path / "local" / f"{name}-{workers}"
            LocalExecutor(workers, False).run(JOBS[name](corpus, output, workers, workers))
            local[name].append(outputs(output))
        assert local[name][0] == local[name][1], name

    for label, name in runs.items():  # a rerun with --wait follows the earlier submission to its end
        output = tmp_path / "slurm" / label
        followed = run(slurm_cluster, command(corpus, name, output) + ["--wait"], FOLLOW_TIMEOUT_S)
        assert followed.returncode == 0, f"{label}: {followed.stderr[-3000:]}\n{logs(output)}"
        assert outputs(output) == local[name][0], label
        assert list((output / "slurm").glob("*.sbatch")) and list((output / "slurm" / "logs").glob("*.log"))
    assert submissions(cancelled, index) == [[0, 1, 2, 3], [CANCELLED_TASK]]  # resubmitted alone

    refused = run(slurm_cluster, command(corpus, "clean", tmp_path / "slurm" / "clean",
                                         ["--executor", "slurm", "--tasks", "2"]), 120)
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines()[-1].endswith("records a run submitted with --tasks 4; use --tasks 4, "
                                                             "or a fresh --output")


def test_the_example_pipeline_script_passes_options_qwen_data_pipeline_accepts(tmp_path):
    recorder = tmp_path / "qwen-data"  # stands in for qwen-data: writes its arguments, one a line
    recorder.write_text('#!/bin/bash\nprintf "%s\\n" "$@" > "$(dirname "$0")/argv"\n')
    recorder.chmod(0o755)
    env = {**os.environ, "QWEN_DATA": str(recorder), "CONFIG": "run.yaml", "OUTPUT": "/shared/out", "TASKS": "8",
           "PARTITION": "cpu", "CPUS": "2", "SBATCH_ARGS": "--account=data --qos=low", "WAIT": "1"}
    subprocess.run(["bash", str(ROOT / "examples" / "slurm" / "data_pipeline.sh")], env=env, check=True)
    argv = (tmp_path / "argv").read_text().splitlines()
    assert argv[0] == "pipeline"
    parser = argparse.ArgumentParser()
    pipeline_arguments(parser)
    args = parser.parse_args(argv[1:])
    assert (args.config, args.output, args.no_progress) == ("run.yaml", "/shared/out", True)
    slurm = executor_config(args, workers=1, progress=False).slurm
    assert slurm == SlurmOptions(8, 2, "cpu", "04:00:00", "16G", ("--account=data", "--qos=low"), wait=True,
                                 progress=False)
