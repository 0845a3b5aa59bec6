"""The one place where DeepSpeed's bf16 optimizer is kept from stalling the host every step.

DeepSpeed 0.19's ``BF16_Optimizer`` (bf16 at ZeRO-0/1, see ``engine.deepspeed_zero_stage``) reads
the device twice in each ``step``: ``is_invalid_grad_norm`` turns the gradient norm into a Python
bool to skip a step with inf/nan gradients, and ``clip_tensors_by_global_norm`` compares the clip
coefficient with 1 on the host. Each read makes the host wait for the step to finish, so it cannot
queue the next one.

:func:`keep_bf16_checks_on_device` replaces both names in ``deepspeed.runtime.bf16_optimizer``'s
namespace only (ZeRO-2/3 keep DeepSpeed's own):
- clipping multiplies by ``min(max_norm / (norm + eps), 1)`` computed on the device: the same
  values as DeepSpeed's (a multiply by 1.0 is exact);
- a non-finite norm no longer skips the step on the host. As in Megatron's bf16 path (no loss
  scaler, no skipped steps), the training loop checks the gradient norm where it reads it anyway,
  at each log interval and before each checkpoint (a non-finite value, or the -1 DeepSpeed writes
  for one), and stops with one line naming the step
  (``pretrain.training.step_metrics.TrainingDiverged``), so no checkpoint holds a diverged state.
"""

from __future__ import annotations

import torch


def _never_on_the_host(norm) -> bool:
    """Stands for ``is_invalid_grad_norm``: the check moves to the loop's log reading."""
    return False


def _clip_on_device(input_tensors, max_norm=1.0, global_norm=None, mpu=None, eps=1e-6):
    """``clip_tensors_by_global_norm`` without reading the coefficient on the host. DeepSpeed
    masks a non-finite norm as -1 (``mask_nan_or_inf_with_val_inplace``): the coefficient is then
    0, and the loop finds the -1 at its next reading."""
    coefficient = torch.clamp(max_norm / (global_norm + eps), max=1.0)
    coefficient = torch.where(global_norm < 0, torch.zeros_like(coefficient), coefficient)
    torch._foreach_mul_([tensor.detach() for tensor in input_tensors], coefficient)
    return global_norm


def keep_bf16_checks_on_device() -> None:
    """Idempotent; call before DeepSpeed builds the engine."""
    from deepspeed.runtime import bf16_optimizer

    bf16_optimizer.is_invalid_grad_norm = _never_on_the_host
    bf16_optimizer.clip_tensors_by_global_norm = _clip_on_device
