"""A trained checkpoint as an inference model: megatron-core's GPTModel at TP=1 PP=1 in this process."""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from pretrain.checkpoint import CheckpointNotFound, resolve_checkpoint
from pretrain.config import ModelConfig, ParallelConfig, saved_run_config

if TYPE_CHECKING:
    from megatron.core.models.gpt import GPTModel


@dataclass
class CheckpointModel:
    model: GPTModel
    model_config: ModelConfig  # the run's sizes; seq_length is the training context length
    checkpoint: Path  # the step directory read


def read_model_config(checkpoint: str | Path) -> tuple[Path, ModelConfig]:
    """The step directory and model config of a run's checkpoint dir or a ``step_XXXXXXXX`` dir;
    :class:`CheckpointNotFound` (one line naming the path) when it is missing or incomplete,
    ``ConfigError`` when its config.yaml cannot be read."""
    step_dir = resolve_checkpoint(checkpoint)
    return step_dir, saved_run_config(step_dir).model


def load_checkpoint_model(checkpoint: str | Path, precision: str = "fp32",
                          device: torch.device | str = "cpu") -> CheckpointModel:
    """Build the run's model, read its weights from the sharded checkpoint (whatever TP/PP/ZeRO the
    run used; tensor by tensor, into the parameters), and put it in eval mode on ``device``."""
    from pretrain.checkpoint.placement import placements
    from pretrain.checkpoint.sharded_state import SavedTensorMismatch
    from pretrain.checkpoint.storage import CheckpointDamaged
    from pretrain.checkpoint.store import load_model_weights
    from pretrain.model.builder import build_model
    from pretrain.parallel.distributed import initialize_distributed

    step_dir, model_config = read_model_config(checkpoint)
    single = ParallelConfig()
    # DeepSpeed announces its CPU communication op on stdout, which carries generated text.
    with contextlib.redirect_stdout(sys.stderr):
        initialize_distributed(single, seed=0)
    model = build_model(model_config, single, precision)
    try:
        load_model_weights(model, placements(model), step_dir)
    except (SavedTensorMismatch, CheckpointDamaged) as error:  # a tensor missing, misshaped, or a file broken
        raise CheckpointNotFound(str(error).splitlines()[0]) from None
    return CheckpointModel(model.to(device).eval(), model_config, step_dir)
