"""The shipped production configs follow the Qwen report's recipe and pass ``qwen-train --check``
at the world size each documents (planned for a cluster this is not: no GPU, no data here)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pretrain.cli.train import run
from pretrain.config import load_config

CONFIGS = Path(__file__).resolve().parents[2] / "examples" / "configs"
PRODUCTION = ["qwen-1.8b", "qwen-7b", "qwen-14b", "qwen-72b"]


def documented_world_size(path: Path) -> int:
    return int(re.search(r"qwen-train --check --world-size (\d+) --gpu-memory 80GiB", path.read_text()).group(1))


@pytest.mark.parametrize("preset", PRODUCTION)
def test_config_follows_the_report_recipe(preset):
    config = load_config(str(CONFIGS / f"{preset}.yaml"), [])
    optimizer, training = config.optimizer, config.training
    assert config.model.preset == preset and config.model.seq_length == 2048
    assert (optimizer.lr, optimizer.min_lr_ratio, optimizer.beta1, optimizer.beta2, optimizer.eps) == (
        3e-4, 0.1, 0.9, 0.95, 1e-8)
    assert training.precision == "bf16" and config.model.attention_backend == "flash"
    assert training.global_batch_size * config.model.seq_length == 4 * 2**20  # ~4M tokens


@pytest.mark.parametrize("preset", PRODUCTION)
def test_config_passes_the_check_at_its_documented_world_size(preset, capsys):
    path = CONFIGS / f"{preset}.yaml"
    world = documented_world_size(path)
    assert world % 8 == 0  # whole nodes of 8 GPUs
    assert run(["--check", "--world-size", str(world), "--gpu-memory", "80GiB", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    estimate = float(re.search(r"memory estimate ([\d.]+) GiB per GPU \(parameters", out).group(1))
    assert 0 < estimate <= 72.0, out


def test_a_layout_that_does_not_fit_fails_with_one_line_per_problem(capsys):
    path = CONFIGS / "qwen-72b.yaml"
    code = run(["--check", "--world-size", "8", "--gpu-memory", "80GiB", "--config", str(path),
                "parallel.tp=1", "parallel.pp=1", "parallel.sequence_parallel=false"])
    assert code == 2
    err = capsys.readouterr().err
    assert re.search(r"estimate [\d.]+ GiB per GPU is over 90% of 80 GiB", err), err
    assert run(["--check", "--world-size", "128", "--gpu-memory", "eighty", "--config", str(path)]) == 2
    assert "--gpu-memory 'eighty'" in capsys.readouterr().err
