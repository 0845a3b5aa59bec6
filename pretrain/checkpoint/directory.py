"""The checkpoint directory: complete checkpoints, ``latest``, and nothing that only looks complete.

A checkpoint is ``<dir>/step_XXXXXXXX``. It is written as ``.staging-step_XXXXXXXX``; once every
rank's files are in it, rank 0 writes ``train_state.json``, ``config.yaml``, ``layout.json`` and the
``COMPLETE`` marker, renames it into place, and only then points ``latest`` (replaced atomically)
at it. A crash at any moment therefore leaves either the previous checkpoint as ``latest`` or the
new one fully written; a reader skips anything without the marker and says so.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from foundation.atomic_write import write_text_atomic

COMPLETE_MARKER = "COMPLETE"
LATEST = "latest"
STAGING_PREFIX = ".staging-"
STATE_DIR = "state"  # the sharded tensors (torch.distributed.checkpoint through megatron-core)
TRAIN_STATE_FILE = "train_state.json"
LAYOUT_FILE = "layout.json"


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
    if not (path / STATE_DIR).is_dir():
        raise CheckpointNotFound(f"{path}: has no sharded state {STATE_DIR}/ (saved by an older version)")
    return path


def read_train_state(checkpoint: Path) -> TrainState:
    return TrainState(**json.loads((checkpoint / TRAIN_STATE_FILE).read_text()))


def read_layout(checkpoint: Path) -> dict | None:
    path = checkpoint / LAYOUT_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def complete_tags(directory: Path) -> list[str]:
    if not directory.is_dir():
        return []
    return sorted(p.name for p in directory.glob("step_*") if (p / COMPLETE_MARKER).is_file())


def resume_candidates(directory: Path) -> tuple[list[str], list[str]]:
    """Complete checkpoints to resume from, best first (``latest``, then newest to oldest), and
    notes on anything half-written that was skipped."""
    notes = [f"ignoring half-written checkpoint {p} (a save was interrupted)"
             for p in sorted(directory.glob(f"{STAGING_PREFIX}*"))] if directory.is_dir() else []
    complete = complete_tags(directory)[::-1]
    latest_file = directory / LATEST
    if latest_file.is_file():
        latest = latest_file.read_text().strip()
        if latest in complete:
            return [latest] + [tag for tag in complete if tag != latest], notes
        notes.append(f"{directory / latest} is incomplete (no {COMPLETE_MARKER} marker); "
                     + (f"resuming from the last complete checkpoint {complete[0]}" if complete
                        else "no complete checkpoint left, starting from scratch"))
    return complete, notes


def start_staging(directory: Path, tag: str) -> Path:
    """An empty staging directory for ``tag`` (rank 0; anything an interrupted save left is removed)."""
    staging = directory / f"{STAGING_PREFIX}{tag}"
    directory.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(staging, ignore_errors=True)
    (staging / STATE_DIR).mkdir(parents=True)
    return staging


def publish(staging: Path, state: TrainState, config_yaml: str, layout: dict, config_file: str) -> Path:
    """Rank 0, once every rank's files are in ``staging``: the small files, the marker, the rename,
    then ``latest``."""
    directory, tag = staging.parent, staging.name[len(STAGING_PREFIX):]
    write_text_atomic(staging / TRAIN_STATE_FILE, json.dumps(asdict(state)), durable=True)
    write_text_atomic(staging / config_file, config_yaml, durable=True)
    write_text_atomic(staging / LAYOUT_FILE, json.dumps(layout), durable=True)
    write_text_atomic(staging / COMPLETE_MARKER, "", durable=True)
    final = directory / tag
    if final.exists():
        shutil.rmtree(final)
    os.replace(staging, final)
    write_text_atomic(directory / LATEST, tag, durable=True)
    return final


def prune(directory: Path, keep_last: int | None, keep: str) -> None:
    if not keep_last:
        return
    older = [t for t in complete_tags(directory) if t != keep]
    for tag in older[:max(0, len(older) - (keep_last - 1))]:
        shutil.rmtree(directory / tag, ignore_errors=True)
