"""examples/slurm/dedup_array.sbatch on a real SLURM on this host: a 3-task array indexes the
shards, a dependent job merges, and the result equals a single-machine run. Skipped, with the
reason, when SLURM can neither be found nor installed."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.support.slurm_cluster import slurm_cluster  # noqa: F401 (a fixture)
from tests.tools.test_dedup_exact import run_dedup
from tests.tools.test_dedup_minhash import corpus
from tools.dedup.minhash import MinHashDedup
from tools.stage.output import StageOutput

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "examples" / "slurm" / "dedup_array.sbatch"
JOB_TIMEOUT_S = 180


@pytest.mark.slow
def test_array_tasks_then_a_merge_job_equal_a_single_machine_run(slurm_cluster, tmp_path):
    data = corpus(tmp_path / "in", shards=5, originals_per_shard=30)
    single = run_dedup([data], tmp_path / "single", MinHashDedup())
    shared = tmp_path / "shared"
    env = {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "INPUT": str(data), "OUTPUT": str(shared), "QWEN_DATA": str(Path(sys.executable).parent / "qwen-data")}
    common = ["--time=3", "--cpus-per-task=1", f"--chdir={ROOT}"]
    index = slurm_cluster.sbatch(SCRIPT, options=[*common, "--array=0-2", f"--output={tmp_path}/index-%a.out"],
                                 env=env)
    merge = slurm_cluster.sbatch(SCRIPT, options=[*common, f"--dependency=afterok:{index}",
                                                  f"--output={tmp_path}/merge.out"], env=env)
    state = slurm_cluster.wait(merge, JOB_TIMEOUT_S)
    logs = "\n".join(p.read_text() for p in sorted(tmp_path.glob("*.out")))
    assert state == "COMPLETED", f"merge job ended {state}:\n{logs[-4000:]}"
    assert logs.count("indexed 2 of 5 shards") == 2 and logs.count("indexed 1 of 5 shards") == 1, logs[-4000:]
    multi = StageOutput.load(shared)
    assert multi.kept == single.kept and multi.removed == single.removed and len(single.removed) > 10
