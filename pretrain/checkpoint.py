"""Checkpoints that are either complete or ignored.

A checkpoint is the directory ``<dir>/step_XXXXXXXX``: DeepSpeed's model/optimizer/scheduler files,
``rng/rank_N.pt`` per rank, ``train_state.json`` (step and data position), ``config.yaml``, the layout-free copy ``full/``
(:mod:`pretrain.checkpoint_reshard`, read when the run resumes under another layout) and a
``COMPLETE`` marker. It is written as ``.staging-step_XXXXXXXX``, marked complete, renamed into place,
and only then does ``latest`` (replaced atomically) point at it. A crash at any moment therefore
leaves either the previous checkpoint as ``latest`` or the new one fully written; resuming skips
anything without the marker and says so.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from pretrain.checkpoint_reshard import (FULL_DIR, current_layout, load_full_model, load_full_optimizer,
                                         saved_layout, write_full_state)
from pretrain.config import CHECKPOINT_CONFIG_FILE

COMPLETE_MARKER = "COMPLETE"
LATEST = "latest"
STAGING_PREFIX = ".staging-"


@dataclass
class TrainState:
    step: int = 0  # optimizer steps taken
    consumed_samples: int = 0


def tag_for(step: int) -> str:
    return f"step_{step:08d}"


class CheckpointNotFound(ValueError):
    """A path given as a checkpoint that is not a complete one (the message names it)."""


def resolve_checkpoint(path: str | Path) -> Path:
    """A complete checkpoint from either a run's checkpoint directory (its ``latest``) or one
    ``step_XXXXXXXX`` directory; tools that read weights (conversion, generation) accept both."""
    path = Path(path)
    if (path / LATEST).is_file():
        path = path / (path / LATEST).read_text().strip()
    if not path.is_dir():
        raise CheckpointNotFound(f"{path}: no such checkpoint directory")
    if not (path / COMPLETE_MARKER).is_file():
        raise CheckpointNotFound(f"{path}: not a complete checkpoint (no {COMPLETE_MARKER} marker)")
    if not (path / FULL_DIR).is_dir():
        raise CheckpointNotFound(f"{path}: has no layout-free copy {FULL_DIR}/ (saved by an older version)")
    return path


def atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _barrier() -> None:
    if torch.distributed.is_initialized():
        torch.distributed.barrier()


def rng_state() -> dict:
    from megatron.core.tensor_parallel import get_cuda_rng_tracker

    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
             "tracker": get_cuda_rng_tracker().get_states()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def restore_rng_state(state: dict) -> None:
    from megatron.core.tensor_parallel import get_cuda_rng_tracker

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    get_cuda_rng_tracker().set_states(state["tracker"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


class CheckpointStore:
    def __init__(self, directory: str, rank: int, zero_stage: int, precision: str, keep_last: int | None = None,
                 layout_free_moments: bool = True):
        self.directory = Path(directory)
        self.rank = rank
        self.zero_stage = zero_stage
        self.precision = precision
        self.keep_last = keep_last
        self.layout_free_moments = layout_free_moments

    def layout(self) -> dict:
        return current_layout(self.zero_stage, self.precision)

    def saved_under_another_layout(self, tag: str) -> bool:
        """Another layout, or weights alone (imported, no DeepSpeed files): load from ``full/``."""
        layout = saved_layout(self.directory / tag)
        if layout is None:
            return False
        current = self.layout()
        return layout.get("weights_only", False) or {key: layout.get(key) for key in current} != current

    def load_model_from_another_layout(self, module: torch.nn.Module, tag: str) -> str:
        """Weights into the module before DeepSpeed wraps it; returns a note naming both layouts."""
        load_full_model(module, self.directory / tag)
        return (f"{self.directory / tag} was saved under {saved_layout(self.directory / tag)}: "
                f"resharded to {self.layout()}")

    def complete_tags(self) -> list[str]:
        if not self.directory.is_dir():
            return []
        return sorted(p.name for p in self.directory.glob("step_*") if (p / COMPLETE_MARKER).is_file())

    def find_resume_tag(self) -> tuple[str | None, list[str]]:
        """The checkpoint to resume from, and notes on anything half-written that was skipped."""
        notes = [f"ignoring half-written checkpoint {p} (a save was interrupted)"
                 for p in sorted(self.directory.glob(f"{STAGING_PREFIX}*"))] if self.directory.is_dir() else []
        complete = self.complete_tags()
        latest_file = self.directory / LATEST
        if latest_file.is_file():
            latest = latest_file.read_text().strip()
            if latest in complete:
                return latest, notes
            fallback = complete[-1] if complete else None
            notes.append(f"{self.directory / latest} is incomplete (no {COMPLETE_MARKER} marker); "
                         + (f"resuming from the last complete checkpoint {fallback}" if fallback
                            else "no complete checkpoint left, starting from scratch"))
            return fallback, notes
        return (complete[-1] if complete else None), notes

    def save(self, engine, state: TrainState, config_yaml: str) -> Path:
        tag = tag_for(state.step)
        staging = self.directory / f"{STAGING_PREFIX}{tag}"
        if self.rank == 0:
            self.directory.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(staging, ignore_errors=True)
        _barrier()
        engine.save_checkpoint(str(self.directory), tag=staging.name, client_state={"train_state": asdict(state)},
                               save_latest=False)
        write_full_state(engine, staging / FULL_DIR, self.layout(), state.step, self.layout_free_moments)
        (staging / "rng").mkdir(parents=True, exist_ok=True)
        torch.save(rng_state(), staging / "rng" / f"rank_{self.rank}.pt")
        _barrier()
        final = self.directory / tag
        if self.rank == 0:
            atomic_write(staging / "train_state.json", json.dumps(asdict(state)))
            atomic_write(staging / CHECKPOINT_CONFIG_FILE, config_yaml)
            atomic_write(staging / COMPLETE_MARKER, "")
            if final.exists():
                shutil.rmtree(final)
            os.replace(staging, final)
            atomic_write(self.directory / LATEST, tag)
            self._prune(keep=tag)
        _barrier()
        return final

    def _prune(self, keep: str) -> None:
        if not self.keep_last:
            return
        older = [t for t in self.complete_tags() if t != keep]
        surplus = len(older) - (self.keep_last - 1)
        for tag in older[:max(0, surplus)]:
            shutil.rmtree(self.directory / tag, ignore_errors=True)

    def load(self, engine, tag: str, resharded: bool = False) -> tuple[TrainState, list[str]]:
        """Optimizer, schedule, train state and RNG; with ``resharded`` the weights are already in
        the module and the rest comes from the layout-free copy."""
        notes = []
        state = TrainState(**json.loads((self.directory / tag / "train_state.json").read_text()))
        if resharded:
            load_full_optimizer(engine, self.directory / tag, state.step)
            if saved_layout(self.directory / tag).get("moments") is False:
                notes.append(f"{self.directory / tag} holds no Adam moments (saved with checkpoint.layout_free=weights): "
                             "they restart from zero")
        else:
            path, _ = engine.load_checkpoint(str(self.directory), tag=tag, load_optimizer_states=True,
                                             load_lr_scheduler_states=True)
            if path is None:
                raise RuntimeError(f"{self.directory / tag}: DeepSpeed could not load this checkpoint")
        rng_file = self.directory / tag / "rng" / f"rank_{self.rank}.pt"
        if rng_file.is_file():
            restore_rng_state(torch.load(rng_file, weights_only=False))
        else:
            notes.append(f"{rng_file} missing (saved under another layout): RNG streams restart from the seed")
        return state, notes
