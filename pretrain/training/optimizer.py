"""AdamW parameter groups and the learning-rate schedule (linear warmup, cosine to a floor)."""

from __future__ import annotations

import math

import torch

from pretrain.config import OptimizerConfig


def parameter_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on matrices only: norms and biases (all 1-D parameters) are not decayed."""
    decay, no_decay = [], []
    for parameter in model.parameters():
        if parameter.requires_grad:
            (no_decay if parameter.ndim < 2 else decay).append(parameter)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def lr_factor(step: int, optimizer: OptimizerConfig, train_steps: int) -> float:
    """Multiplier of the peak LR for optimizer step ``step`` (0-based)."""
    if step < optimizer.warmup_steps:
        return (step + 1) / optimizer.warmup_steps
    decay_steps = optimizer.decay_steps or train_steps
    progress = min(1.0, (step - optimizer.warmup_steps) / max(1, decay_steps - optimizer.warmup_steps))
    cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
    return optimizer.min_lr_ratio + (1.0 - optimizer.min_lr_ratio) * cosine


def build_optimizer(model: torch.nn.Module, optimizer: OptimizerConfig, offload: bool) -> torch.optim.Optimizer:
    groups = parameter_groups(model, optimizer.weight_decay)
    kwargs = dict(lr=optimizer.lr, betas=(optimizer.beta1, optimizer.beta2), eps=optimizer.eps)
    if offload:
        # ZeRO-Offload keeps optimizer state on the CPU, where DeepSpeed's vectorized Adam runs.
        from deepspeed.ops.adam import DeepSpeedCPUAdam

        return DeepSpeedCPUAdam(groups, adamw_mode=True, **kwargs)
    # torch's fused kernel (CUDA and CPU) instead of a loop of per-tensor ops, so the CPU tests run
    # the path a GPU run takes.
    return torch.optim.AdamW(groups, fused=True, **kwargs)


def build_scheduler(optimizer: torch.optim.Optimizer, config: OptimizerConfig, train_steps: int):
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, config, train_steps))
