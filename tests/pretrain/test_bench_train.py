"""``qwen-bench train`` runs our training step and Hugging Face's side by side, in both precisions
users train in (a bf16 run once crashed: DeepSpeed's bf16 optimizer holds the gradients and clips
them itself, and the benchmark clipped a list of parameters that had none)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.pretrain.conftest import REPO

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_qwen_bench_train_reports_both_models_in_each_precision(precision, tmp_path):
    figures = tmp_path / "train.json"
    env = {key: value for key, value in os.environ.items()
           if key not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    done = subprocess.run([str(Path(sys.executable).parent / "qwen-bench"), "train", "--preset", "qwen-tiny",
                           "--seq-length", "32", "--micro-batch", "1", "--warmup", "1", "--steps", "1",
                           "--precision", precision, "--json", str(figures)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(figures.read_text())
    assert result["precision"] == precision
    assert result["tokens_per_second"]["ours"] > 0 and result["tokens_per_second"]["hf"] > 0
    assert "| qwen-pretrain: megatron-core GPTModel + DeepSpeed engine |" in done.stdout
