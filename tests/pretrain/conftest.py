"""Shared fixtures: one embedded corpus per session, a tiny-run config, single-process groups."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# A run small enough for a few seconds a step on 2 cores, on the real Qwen vocabulary.
TINY_OVERRIDES = [
    "model.preset=qwen-tiny", "model.seq_length=32", "training.micro_batch_size=2",
    "training.global_batch_size=4", "training.log_interval=1", "training.eval_interval=1000",
    "training.eval_iters=1", "optimizer.warmup_steps=2", "optimizer.lr=1e-2", "optimizer.decay_steps=200", "logging.tensorboard=false",
]


@pytest.fixture(scope="session")
def corpus_prefixes(tmp_path_factory) -> list[str]:
    from pretrain.data.embedded import build_embedded_corpus

    prefixes, _ = build_embedded_corpus(str(tmp_path_factory.mktemp("corpus")))
    return prefixes


def run_overrides(corpus_prefixes: list[str], run_dir: Path, steps: int, *extra: str) -> list[str]:
    return TINY_OVERRIDES + [
        f"data.prefixes={json.dumps(corpus_prefixes)}", "data.weights=[0.6, 0.4]",
        f"training.train_steps={steps}", f"logging.dir={run_dir}", f"data.cache_dir={run_dir / 'data_cache'}",
        *extra,
    ]


def start_training(overrides: list[str], **popen_kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "SLURM_PROCID", "SLURM_NTASKS"):
        env.pop(name, None)
    return subprocess.Popen([sys.executable, "-m", "pretrain.cli.train", *overrides], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen_kwargs)


def run_training_process(overrides: list[str], timeout: float = 600) -> subprocess.CompletedProcess:
    process = start_training(overrides)
    stdout, stderr = process.communicate(timeout=timeout)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def step_losses(run_dir: Path) -> dict[int, float]:
    """Per-step training loss from metrics.jsonl; a resumed step overrides its earlier record."""
    losses = {}
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        if "loss" in record:
            losses[record["step"]] = record["loss"]
    return losses


@pytest.fixture(scope="session")
def single_process_groups():
    from pretrain.config import ParallelConfig
    from pretrain.parallel.distributed import initialize_distributed

    initialize_distributed(ParallelConfig(), seed=1234)
