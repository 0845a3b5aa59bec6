"""The parallel layout in one place: this rank's model under TP x PP x DP x ZeRO, and the one way the
training loop steps, evaluates, saves and restores it, whatever the layout.

:func:`parallelize` is the order that matters, done once (torchtitan's ``parallelize`` and
``pipelining`` functions play this part there): build this rank's part of the model
(megatron-core: its pipeline stage, its tensor-parallel shard), note where each of its values sits
in the checkpoint's global tensors, load the weights it starts from (a resumed checkpoint or
``checkpoint.init_weights``, either saved under any layout) while the parameters are still whole,
wrap it in DeepSpeed (ZeRO over data parallel), pick the schedule (megatron-core's pipeline
schedule, or DeepSpeed's micro-batch steps), and restore the optimizer, schedule and RNG of a
resumed checkpoint. The loop then only calls :class:`ParallelModel`.
"""

from __future__ import annotations

from pathlib import Path

import torch
from megatron.core import parallel_state

from pretrain.checkpoint import TrainState, resolve_checkpoint
from pretrain.checkpoint.placement import Placement, placements
from pretrain.checkpoint.store import CheckpointStore, load_model_weights
from pretrain.config import CHECKPOINT_CONFIG_FILE, RunConfig, saved_run_config
from pretrain.model.builder import build_model
from pretrain.parallel.sequence_parallel import sum_sequence_parallel_gradients
from pretrain.training.engine import build_engine, clip_and_measure, deepspeed_reports_grad_norm
from pretrain.training.schedules import MicroBatchSchedule, PipelineSchedule


def current_layout(config: RunConfig) -> dict:
    """What a checkpoint records of the layout that saved it (its RNG files belong to it)."""
    return {"tp": config.parallel.tp, "pp": config.parallel.pp, "dp": parallel_state.get_data_parallel_world_size(),
            "zero_stage": config.parallel.zero_stage, "precision": config.training.precision}


class ParallelModel:
    """This rank's part of the model, wrapped for the run's layout."""

    def __init__(self, config: RunConfig, engine, placements_: dict[str, Placement]):
        self.config = config
        self.engine = engine
        self.placements = placements_
        self.layout = current_layout(config)
        self.schedule = (PipelineSchedule(engine, config.model.seq_length, config.training.micro_batch_size)
                         if config.parallel.pp > 1 else MicroBatchSchedule(engine))
        self.grad_norm: torch.Tensor | float = 0.0  # of the last step, left on the device

    def _optimizer_step(self) -> None:
        if self.engine.is_gradient_accumulation_boundary() and not deepspeed_reports_grad_norm(self.config):
            self.grad_norm = clip_and_measure(self.engine, self.config.optimizer.clip_grad)
        self.engine.step()

    def train_step(self, batches: list[dict]) -> torch.Tensor:
        """One optimizer step on a global batch (this rank's micro-batches); its loss, on the device."""
        loss = self.schedule.forward_backward(batches, self._optimizer_step)
        if deepspeed_reports_grad_norm(self.config):
            norm = self.engine.get_global_grad_norm()  # a device tensor: not read here
            self.grad_norm = 0.0 if norm is None else norm
        return loss

    @torch.no_grad()
    def evaluate(self, batches: list[dict]) -> torch.Tensor:
        """The mean loss of ``batches`` on this rank, on the device."""
        self.engine.eval()
        try:
            return self.schedule.evaluate(batches)
        finally:
            self.engine.train()

    def learning_rate(self) -> float:
        return self.engine.get_lr()[0]

    def save(self, store: CheckpointStore, state: TrainState) -> None:
        store.save(self.engine, self.placements, state, self.config.to_yaml(), self.layout)

    def restore(self, store: CheckpointStore, checkpoint: Path) -> TrainState:
        return store.load_training_state(self.engine, self.placements, checkpoint, self.layout,
                                         self.config.training.precision)


def _initial_weights(config: RunConfig, resume: Path | None, log) -> Path | None:
    """Where the weights come from: the resumed checkpoint, else ``checkpoint.init_weights``."""
    source = config.checkpoint.init_weights
    if source is None:
        return resume
    if resume is not None:
        log(f"checkpoint: resuming from {resume}; checkpoint.init_weights {source} is not used")
        return resume
    path = resolve_checkpoint(source)
    log(f"checkpoint: initialized the weights from {path} (optimizer, step and data position start fresh)")
    # Not errors: raising the RoPE base or the context is how long-context training starts.
    saved = saved_run_config(path).model
    for name in ("rotary_base", "norm_epsilon", "seq_length"):
        if getattr(saved, name) != getattr(config.model, name):
            log(f"checkpoint: note: model.{name} is {getattr(config.model, name)} in this run, "
                f"{getattr(saved, name)} where the weights were trained ({path / CHECKPOINT_CONFIG_FILE})")
    return path


def parallelize(config: RunConfig, store: CheckpointStore | None, log) -> tuple[ParallelModel, TrainState]:
    """This rank's model under the run's layout, resumed from ``store``'s checkpoint when there is one."""
    model = build_model(config.model, config.parallel, config.training.precision)
    if config.parallel.sequence_parallel:
        sum_sequence_parallel_gradients(model)
    where = placements(model)
    resume = store.find_resume() if store is not None and config.checkpoint.resume else None
    weights = _initial_weights(config, resume, log)
    if weights is not None:
        load_model_weights(model, where, weights)
    engine = build_engine(model, config, parallel_state.get_data_parallel_world_size())
    parallel_model = ParallelModel(config, engine, where)
    state = TrainState()
    if resume is not None:
        state = parallel_model.restore(store, resume)
        log(f"checkpoint: resumed from {resume} at step {state.step}")
    return parallel_model, state
