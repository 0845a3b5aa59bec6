"""Qwen's RMSNorm as a megatron-core norm module (signature ``(config, hidden_size, eps)``)."""

from __future__ import annotations

import torch
from megatron.core.transformer.transformer_config import TransformerConfig


class QwenRMSNorm(torch.nn.Module):
    """``x * rsqrt(mean(x^2) + eps) * weight``, normalized in fp32 whatever the input dtype."""

    def __init__(self, config: TransformerConfig, hidden_size: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = torch.nn.Parameter(torch.ones(hidden_size, dtype=config.params_dtype))
        # Replicated across TP ranks; with sequence parallelism its gradient needs a TP all-reduce.
        setattr(self.weight, "sequence_parallel", config.sequence_parallel)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        as_fp32 = hidden_states.float()
        normalized = as_fp32 * torch.rsqrt(as_fp32.pow(2).mean(-1, keepdim=True) + self.eps)
        return normalized.type_as(hidden_states) * self.weight
