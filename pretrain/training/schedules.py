"""How one global batch runs through this rank: DeepSpeed's micro-batch steps, or megatron-core's 1F1B
pipeline schedule driving the DeepSpeed engine.

Both take the optimizer step as a callable and call it where DeepSpeed expects it, so the training
loop runs a step the same way under every layout (:mod:`pretrain.training.layout`).

Pipeline parallelism: megatron-core's ``get_forward_backward_func`` runs the micro-batches of one global step through
this rank's stage (sending activations forward and gradients back over the pipeline group) and
does the backward itself, outside DeepSpeed. DeepSpeed then only reduces the accumulated gradients
over the data-parallel group and steps the optimizer (ZeRO-0/1): exactly the split DeepSpeed's own
pipeline engine makes, which is why the engine is flagged as pipelined. docs/parallelism.md says
why this was chosen over DeepSpeed's ``PipelineModule`` (not timed against it). The loss exists on
the last stage only; summing it over the pipeline group gives every rank the same number.
"""

from __future__ import annotations

from functools import partial

import torch
from megatron.core import parallel_state
from megatron.core.pipeline_parallel import get_forward_backward_func

from pretrain.parallel.cpu_compat import cuda_literals_on_cpu


def masked_mean(per_token_loss: torch.Tensor, loss_mask: torch.Tensor) -> torch.Tensor:
    loss_mask = loss_mask.to(per_token_loss.dtype)
    return (per_token_loss.float() * loss_mask).sum() / loss_mask.sum().clamp(min=1)


def _loss_func(loss_mask: torch.Tensor, per_token_loss: torch.Tensor):
    loss = masked_mean(per_token_loss, loss_mask)
    # The schedule divides the returned loss in place by the number of micro-batches.
    return loss, {"loss": loss.detach().clone()}


def _forward_step(data_iterator, model):
    batch = next(data_iterator)
    # Stages after the first take their input from the previous stage (set by the schedule).
    per_token = model(batch["tokens"], batch["position_ids"], None, labels=batch["labels"])
    return per_token, partial(_loss_func, batch["loss_mask"])


class MicroBatchSchedule:
    """Without pipeline parallelism: DeepSpeed runs each micro-batch's backward, and its step after
    each one only updates at the last (gradient accumulation)."""

    def __init__(self, engine):
        self.engine = engine

    def _loss(self, batch: dict) -> torch.Tensor:
        return masked_mean(self.engine(batch["tokens"], batch["position_ids"], None, labels=batch["labels"]),
                           batch["loss_mask"])

    def forward_backward(self, batches: list[dict], optimizer_step) -> torch.Tensor:
        loss = torch.zeros((), device=batches[0]["tokens"].device)
        for batch in batches:
            micro_loss = self._loss(batch)
            self.engine.backward(micro_loss)
            optimizer_step()
            loss += micro_loss.detach().float() / len(batches)
        return loss

    @torch.no_grad()
    def evaluate(self, batches: list[dict]) -> torch.Tensor:
        return sum(self._loss(batch).float() for batch in batches) / len(batches)


class PipelineSchedule:
    def __init__(self, engine, seq_length: int, micro_batch_size: int):
        self.engine = engine
        self.seq_length = seq_length
        self.micro_batch_size = micro_batch_size
        self.schedule = get_forward_backward_func()
        # Backward happens in the schedule, so DeepSpeed must reduce gradients the way it does for
        # its own pipeline engine, and every ``engine.step()`` is a gradient-accumulation boundary.
        engine.pipeline_parallelism = True
        engine.set_gradient_accumulation_boundary(True)

    def _run(self, batches: list[dict], forward_only: bool) -> torch.Tensor:
        with cuda_literals_on_cpu():
            outputs = self.schedule(forward_step_func=_forward_step, data_iterator=iter(batches),
                                    model=[self.engine.module], num_microbatches=len(batches),
                                    seq_length=self.seq_length, micro_batch_size=self.micro_batch_size,
                                    forward_only=forward_only)
        loss = torch.zeros((), device=batches[0]["tokens"].device)
        if parallel_state.is_pipeline_last_stage():
            loss = torch.stack([output["loss"] for output in outputs]).mean()
        torch.distributed.all_reduce(loss, group=parallel_state.get_pipeline_model_parallel_group())
        return loss

    def forward_backward(self, batches: list[dict], optimizer_step) -> torch.Tensor:
        """Gradients of the global batch on this stage, reduced over data parallel, then the step."""
        loss = self._run(batches, forward_only=False)
        self.engine.allreduce_gradients()
        optimizer_step()
        return loss

    @torch.no_grad()
    def evaluate(self, batches: list[dict]) -> torch.Tensor:
        return self._run(batches, forward_only=True)
