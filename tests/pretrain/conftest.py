"""Shared fixtures: one embedded corpus per session, a tiny-run config, single-process groups."""

from __future__ import annotations

import json
import os
import shutil
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


def start_training(overrides: list[str], entry: tuple[str, ...] = ("-m", "pretrain.cli.train"),
                   **popen_kwargs) -> subprocess.Popen:
    """qwen-train as a plain process; ``entry`` replaces ``-m pretrain.cli.train`` (a test's wrapper)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "SLURM_PROCID", "SLURM_NTASKS"):
        env.pop(name, None)
    return subprocess.Popen([sys.executable, *entry, *overrides], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen_kwargs)


def run_training_process(overrides: list[str], timeout: float = 600) -> subprocess.CompletedProcess:
    process = start_training(overrides)
    stdout, stderr = process.communicate(timeout=timeout)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def step_losses(run_dir: Path, key: str = "loss") -> dict[int, float]:
    """Per-step training loss (or ``key``, e.g. valid_loss) from metrics.jsonl; a resumed step
    overrides its earlier record."""
    losses = {}
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        if key in record:
            losses[record["step"]] = record[key]
    return losses


@pytest.fixture(scope="session")
def single_process_groups():
    from pretrain.config import ParallelConfig
    from pretrain.parallel.distributed import initialize_distributed

    # initialize_distributed exports RANK, MASTER_PORT, ... for DeepSpeed; restore the environment
    # so processes that later tests start do not inherit a single-process rendezvous.
    saved = dict(os.environ)
    initialize_distributed(ParallelConfig(), seed=1234)
    os.environ.clear()
    os.environ.update(saved)


# Parity runs: a 512-token vocabulary keeps the model small enough that a 20-step run is mostly
# process start-up, and 512 is a multiple of 128 x TP for TP 1, 2, 4, so every layout pads the
# embedding to the same 512 rows (a different padding would change the softmax).
PARITY_VOCAB = 512
PARITY_OVERRIDES = [
    "model.preset=qwen-tiny", f"model.vocab_size={PARITY_VOCAB}", "model.seq_length=32",
    "training.micro_batch_size=1", "training.global_batch_size=4", "training.precision=fp32",
    "training.log_interval=1", "training.eval_interval=1000", "training.eval_iters=1",
    "optimizer.warmup_steps=2", "optimizer.lr=1e-2", "optimizer.decay_steps=200", "logging.tensorboard=false",
]


@pytest.fixture(scope="session")
def small_vocab_prefix(tmp_path_factory) -> str:
    """A megatron dataset of token ids below PARITY_VOCAB: walks along a fixed random successor table
    over 64 tokens, so a few steps already learn something."""
    import numpy as np
    import torch
    from megatron.core.datasets.indexed_dataset import IndexedDatasetBuilder

    prefix = str(tmp_path_factory.mktemp("small_vocab") / "phrases")
    rng = np.random.default_rng(0)
    builder = IndexedDatasetBuilder(f"{prefix}.bin", dtype=np.int32)
    tokens = rng.choice(np.arange(1, PARITY_VOCAB), size=64, replace=False)
    successor = dict(zip(tokens, rng.permutation(tokens)))
    for _ in range(400):
        document = [rng.choice(tokens)]
        for _ in range(int(rng.integers(16, 96))):
            document.append(successor[document[-1]])
        builder.add_item(torch.from_numpy(np.append(document, 0).astype(np.int32)))
        builder.end_document()
    builder.finalize(f"{prefix}.idx")
    return prefix


def parity_overrides(prefix: str, run_dir: Path, steps: int, *extra: str) -> list[str]:
    return PARITY_OVERRIDES + [
        f"data.prefixes=[{prefix}]", f"training.train_steps={steps}", f"logging.dir={run_dir}",
        f"data.cache_dir={run_dir / 'data_cache'}", *extra,
    ]


def run_processes(nproc: int, overrides: list[str], timeout: float = 900) -> subprocess.CompletedProcess:
    """qwen-train as ``nproc`` processes under torchrun (a plain process when nproc is 1)."""
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"]
                if nproc > 1 else [sys.executable])
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "SLURM_PROCID", "SLURM_NTASKS"):
        env.pop(name, None)
    return subprocess.run([*launcher, "-m", "pretrain.cli.train", *overrides], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


PARITY_STEPS = 20


def write_initial_checkpoint(prefix: str, checkpoint: Path, *extra: str) -> Path:
    """A step-0 checkpoint of a single-process parity run (with ``extra`` overrides)."""
    script = ("import sys; from pretrain.config import load_config; from pretrain.training.loop import Trainer; "
              "Trainer(load_config(None, sys.argv[1:])).save()")
    env = {key: value for key, value in os.environ.items() if key not in ("RANK", "WORLD_SIZE", "MASTER_PORT")}
    overrides = parity_overrides(prefix, checkpoint.parent, PARITY_STEPS, f"checkpoint.dir={checkpoint}", *extra)
    done = subprocess.run([sys.executable, "-c", script, *overrides], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return checkpoint


@pytest.fixture(scope="session")
def initial_checkpoint(small_vocab_prefix, tmp_path_factory) -> Path:
    """A step-0 checkpoint of a single-process run: the one set of initial weights every layout
    loads (resharded to its own layout)."""
    return write_initial_checkpoint(small_vocab_prefix, tmp_path_factory.mktemp("initial") / "ckpt")


def train_layout(prefix: str, checkpoint: Path, run_dir: Path, nproc: int, steps: int, *extra: str) -> str:
    """Train (resuming from ``checkpoint``'s latest) up to ``steps``; returns stderr."""
    done = run_processes(nproc, parity_overrides(prefix, run_dir, steps, f"checkpoint.dir={checkpoint}", *extra))
    assert done.returncode == 0, done.stderr[-4000:]
    return done.stderr


def saved_tensor(checkpoint: Path, key: str):
    """The whole fp32 tensor ``key`` of a checkpoint's sharded state, whatever layout wrote it."""
    import torch

    from pretrain.checkpoint.store import saved_tensors
    from pretrain.checkpoint.tensors import whole_tensor_request

    saved = saved_tensors(checkpoint)
    values = torch.empty(saved.shape(key))
    saved.load([whole_tensor_request(key, values)])
    return values


@pytest.fixture(scope="session")
def single_process_run(initial_checkpoint, small_vocab_prefix, tmp_path_factory) -> Path:
    """The reference: PARITY_STEPS single-process steps from the initial weights, a checkpoint every 2."""
    run_dir = tmp_path_factory.mktemp("single")
    shutil.copytree(initial_checkpoint, run_dir / "ckpt")
    train_layout(small_vocab_prefix, run_dir / "ckpt", run_dir, 1, PARITY_STEPS, "checkpoint.save_interval=2")
    return run_dir
