"""scripts/gpu_check.sh's plumbing, on a machine without a GPU: --dry-run echoes every step instead
of running it, and the report still gathers one JSON. The files it leaves in OUT stay within what
the device tool brings back (eight)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STEPS = ["environment", "kernels_build", "kernels_tests", "train_bf16_save", "train_bf16_resume_same_layout",
         "train_bf16_resume_cross_layout", "bench_train", "bench_kernels"]


def test_dry_run_records_every_step_in_one_json(tmp_path):
    out, work = tmp_path / "out", tmp_path / "work"
    result = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh"), "--dry-run"], capture_output=True,
                            text=True, timeout=120, env={**os.environ, "OUT": str(out), "WORK": str(work)})
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((out / "gpu_check.json").read_text())
    assert list(report["steps"]) == STEPS
    assert all(step["status"] == 0 for step in report["steps"].values())
    log = (out / "gpu_check.log").read_text()
    assert "dry run: python3 -c from pretrain.cli.bench import main; main() train --preset qwen-1.8b --seq-length 2048" in log
    assert len(list(out.iterdir())) <= 8
