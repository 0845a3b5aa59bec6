"""Sequence parallelism's one extra gradient reduction, for a model trained by DeepSpeed.

With ``sequence_parallel`` each TP rank runs the norms on its slice of the sequence, so the
gradient of a norm weight (replicated across TP, marked ``sequence_parallel`` by megatron-core's
norms and ours) is only that slice's share. megatron-core sums it over the TP group in its own
``finalize_model_grads``, which a DeepSpeed engine never calls. Here a tensor hook sums it as soon
as autograd produces it, before DeepSpeed's gradient hooks (ZeRO-2/3) or step (ZeRO-0/1) see it.
All TP ranks run the same graph, so the hooks' all-reduces line up.
"""

from __future__ import annotations

import torch
from megatron.core import parallel_state


def _sum_over_tensor_parallel(gradient: torch.Tensor) -> torch.Tensor:
    gradient = gradient.clone()
    torch.distributed.all_reduce(gradient, group=parallel_state.get_tensor_model_parallel_group())
    return gradient


def sum_sequence_parallel_gradients(model: torch.nn.Module) -> int:
    """Hook every ``sequence_parallel`` parameter; returns how many were hooked."""
    hooked = 0
    for parameter in model.parameters():
        if getattr(parameter, "sequence_parallel", False):
            parameter.register_hook(_sum_over_tensor_parallel)
            hooked += 1
    return hooked
