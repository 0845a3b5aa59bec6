"""A run's checkpoints: which one to resume, saving (in the background by default), loading.

Loading is the same under every layout: each rank asks for the boxes of its own shards
(:mod:`pretrain.checkpoint.sharded_state`) and reads only those. The weights go into the model
before DeepSpeed wraps it (so ZeRO partitions them as usual); the Adam moments, the optimizer's
fp32 master weights (bf16) and the learning-rate schedule into the engine afterwards. RNG streams
come back only under the layout that saved them.

A checkpoint whose files are missing, cut short or unlike its metadata is damaged: resuming says
which file and falls back to the previous complete checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from pretrain.checkpoint import directory as ckpt_dir
from pretrain.checkpoint.directory import STATE_DIR, TrainState, read_layout, read_train_state, tag_for
from pretrain.checkpoint.fragments import OptimizerState
from pretrain.checkpoint.placement import Placement
from pretrain.checkpoint.rng import restore_rng_state, rng_file, save_rng_state
from pretrain.checkpoint.sharded_state import SavedTensors, load_optimizer, load_weights, tensors_to_save
from pretrain.checkpoint.storage import CheckpointDamaged, verify
from pretrain.checkpoint.writer import ShardedWriter
from pretrain.config import CHECKPOINT_CONFIG_FILE, CheckpointConfig, saved_run_config


def saved_tensors(checkpoint: Path) -> SavedTensors:
    """The sharded state of a complete checkpoint; :class:`CheckpointDamaged` names a broken file."""
    return SavedTensors(checkpoint / STATE_DIR, saved_run_config(checkpoint).model.vocab_size)


def load_model_weights(module: torch.nn.Module, placements: dict[str, Placement], checkpoint: Path) -> None:
    """A checkpoint's weights into this rank's (not yet DeepSpeed-wrapped) module, any layout."""
    load_weights(module, placements, saved_tensors(checkpoint))


def _broadcast(value):
    if torch.distributed.is_initialized() and torch.distributed.get_world_size() > 1:
        holder = [value]
        torch.distributed.broadcast_object_list(holder, src=0)
        return holder[0]
    return value


class CheckpointStore:
    def __init__(self, config: CheckpointConfig, rank: int, log: Callable[[str], None]):
        self.config = config
        self.directory = Path(config.dir)
        self.rank = rank
        self.log = log
        self.writer = ShardedWriter(config.async_save)

    def _usable(self, tag: str) -> str | None:
        """Why ``tag`` cannot be resumed (one line naming the file), or None."""
        checkpoint = self.directory / tag
        try:
            verify(checkpoint / STATE_DIR, chunks=True)
            read_train_state(checkpoint)
            saved_run_config(checkpoint)
        except (CheckpointDamaged, ValueError, OSError) as error:
            return str(error).splitlines()[0]
        return None

    def find_resume(self) -> Path | None:
        """The newest usable complete checkpoint (rank 0 decides for all; collective), with notes
        on everything skipped on the way."""
        choice = None
        if self.rank == 0:
            candidates, notes = ckpt_dir.resume_candidates(self.directory)
            for index, tag in enumerate(candidates):
                damage = self._usable(tag)
                if damage is None:
                    choice = tag
                    break
                following = candidates[index + 1] if index + 1 < len(candidates) else None
                notes.append(f"{self.directory / tag} is damaged: {damage}; " + (
                    f"resuming from the previous complete checkpoint {following}" if following
                    else "no complete checkpoint left, starting from scratch"))
            for note in notes:
                self.log(f"checkpoint: {note}")
        choice = _broadcast(choice)
        return None if choice is None else self.directory / choice

    def load_training_state(self, engine, placements: dict[str, Placement], checkpoint: Path, layout: dict,
                            precision: str) -> TrainState:
        """Optimizer state, schedule and RNG of ``checkpoint`` into a DeepSpeed engine whose module
        already holds the checkpoint's weights (:func:`load_model_weights`)."""
        from megatron.core import dist_checkpointing

        state = read_train_state(checkpoint)
        saved = saved_tensors(checkpoint)
        moments = load_optimizer(engine.module, placements, OptimizerState(engine), saved, state.step,
                                 master_weights=precision != "fp32")
        common = dist_checkpointing.load_common_state_dict(str(checkpoint / STATE_DIR))
        if common.get("scheduler") is not None:  # imported weights carry no schedule: it starts fresh
            engine.lr_scheduler.load_state_dict(common["scheduler"])
            for group, lr in zip(OptimizerState(engine).base.param_groups, engine.lr_scheduler.get_last_lr()):
                group["lr"] = lr
        if not moments and state.step:
            self.log(f"checkpoint: {checkpoint} holds no Adam moments: they restart from zero")
        saved_layout = read_layout(checkpoint)
        if saved_layout == layout and rng_file(checkpoint, self.rank).is_file():
            restore_rng_state(checkpoint, self.rank)
        elif saved_layout is not None:
            self.log(f"checkpoint: {checkpoint} was saved under {saved_layout}: resharded to {layout} "
                     "(RNG streams restart from the seed)")
        return state

    def save(self, engine, placements: dict[str, Placement], state: TrainState, config_yaml: str,
             layout: dict) -> None:
        """Start writing the checkpoint of ``state`` (collective); it becomes ``latest`` once every
        rank's files are written, in the background with ``checkpoint.async_save``."""
        from megatron.core import parallel_state

        waited = self.writer.in_flight
        if waited is not None:
            self.log(f"checkpoint: waiting for the save of {waited} to finish before saving "
                     f"{tag_for(state.step)} (one save is written at a time)")
            self.wait()
        tag = tag_for(state.step)
        staging = self.directory / f"{ckpt_dir.STAGING_PREFIX}{tag}"
        if self.rank == 0:
            ckpt_dir.start_staging(self.directory, tag)
        torch.distributed.barrier()
        save_rng_state(staging, self.rank)
        tensors = tensors_to_save(engine.module, placements, OptimizerState(engine),
                                  parallel_state.get_data_parallel_rank(), parallel_state.get_data_parallel_world_size())
        saved_state = TrainState(state.step, state.consumed_samples)

        def publish() -> None:
            if self.rank == 0:
                final = ckpt_dir.publish(staging, saved_state, config_yaml, layout, CHECKPOINT_CONFIG_FILE)
                ckpt_dir.prune(self.directory, self.config.keep_last, keep=tag)
                self.log(f"checkpoint: saved {final}")
            torch.distributed.barrier()

        self.writer.save(tensors, {"scheduler": engine.lr_scheduler.state_dict()}, staging / STATE_DIR, tag, publish)

    def poll(self) -> None:
        """Finish a background save whose files are all written (collective, cheap)."""
        self.writer.poll()

    def wait(self) -> None:
        """Block until no save is in flight (collective)."""
        self.writer.wait()

    def latest(self) -> Path | None:
        latest = self.directory / ckpt_dir.LATEST
        return self.directory / latest.read_text().strip() if latest.is_file() else None
