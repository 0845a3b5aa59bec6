"""megatron-core modules that run the fused kernels; the Qwen layer spec swaps them in.

- :class:`FusedRMSNorm`: a norm with megatron's norm signature ``(config, hidden_size, eps)``.
- :class:`FusedSwiGLUMLP`: megatron's ``MLP`` with the gated activation done by ``fused_swiglu``.
- :class:`FusedRotarySelfAttention`: megatron's ``SelfAttention`` with RoPE applied by
  ``fused_rotary`` to the query and key it has just projected.

Parameter names and shapes are those of the torch modules, so checkpoints move between paths.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from megatron.core.transformer.attention import SelfAttention
from megatron.core.transformer.mlp import MLP
from megatron.core.transformer.transformer_config import TransformerConfig

from qwen_kernels.functions import accumulate_dtype, fused_rmsnorm, fused_rotary, fused_swiglu


class FusedRMSNorm(torch.nn.Module):
    """``x * rsqrt(mean(x^2) + eps) * weight`` in one fused pass, computed in fp32."""

    def __init__(self, config: TransformerConfig, hidden_size: int, eps: float = 1e-6):
        super().__init__()
        if config.layernorm_zero_centered_gamma:
            raise ValueError("FusedRMSNorm does not implement layernorm_zero_centered_gamma")
        self.eps = eps
        self.weight = torch.nn.Parameter(torch.ones(hidden_size, dtype=config.params_dtype))
        # Replicated across TP ranks; with sequence parallelism its gradient needs a TP all-reduce.
        setattr(self.weight, "sequence_parallel", config.sequence_parallel)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        weight = self.weight if self.weight.dtype == hidden_states.dtype else self.weight.to(hidden_states.dtype)
        return fused_rmsnorm(hidden_states.contiguous(), weight, self.eps)


class FusedSwiGLUMLP(MLP):
    """``MLP`` whose activation step is one fused ``silu(gate) * up`` over fc1's [gate | up] output."""

    def __init__(self, config: TransformerConfig, *args, **kwargs):
        if not (config.gated_linear_unit and config.activation_func is F.silu):
            raise ValueError("FusedSwiGLUMLP needs gated_linear_unit=True and activation_func=F.silu")
        if config.activation_func_clamp_value is not None or config.glu_linear_offset != 0.0:
            raise ValueError("FusedSwiGLUMLP implements plain SwiGLU: no clamp value, no linear offset")
        super().__init__(config, *args, **kwargs)

    def forward(self, hidden_states, per_token_scale=None, **kwargs):
        if per_token_scale is not None:  # MoE expert weighting: megatron's own path handles it
            return super().forward(hidden_states, per_token_scale, **kwargs)
        fc1, fc1_bias = self.linear_fc1(hidden_states)
        if fc1_bias is not None:
            fc1 = fc1 + fc1_bias
        # fc1 is this step's fresh projection, used by nothing else: its memory takes its gradient.
        return self.linear_fc2(fused_swiglu(fc1.contiguous(), grad_into_input=True))


class FusedRotarySelfAttention(SelfAttention):
    """``SelfAttention`` with fused rotate-half RoPE on query and key.

    megatron-core applies RoPE inside ``forward`` right after projecting q/k/v. For plain training
    (no inference cache, no packed sequences, rotate-half over the whole head) this class takes
    the rotary embedding out of that call and applies the fused kernel where the projection
    returns instead, which is the same point in the computation. Anything else goes through
    megatron-core unchanged.
    """

    _pending_rotary: tuple[torch.Tensor, torch.Tensor] | None = None

    def forward(self, hidden_states, attention_mask, key_value_states=None, inference_context=None,
                rotary_pos_emb=None, *args, packed_seq_params=None, **kwargs):
        if self._can_fuse(rotary_pos_emb, inference_context, packed_seq_params, kwargs):
            if not isinstance(rotary_pos_emb, tuple):
                rotary_pos_emb = (rotary_pos_emb, rotary_pos_emb)
            self._pending_rotary = rotary_pos_emb
            try:
                return super().forward(hidden_states, attention_mask, key_value_states, inference_context, None,
                                       *args, packed_seq_params=packed_seq_params, **kwargs)
            finally:
                self._pending_rotary = None
        return super().forward(hidden_states, attention_mask, key_value_states, inference_context, rotary_pos_emb,
                               *args, packed_seq_params=packed_seq_params, **kwargs)

    def get_query_key_value_tensors(self, *args, **kwargs):
        qkv = super().get_query_key_value_tensors(*args, **kwargs)
        if self._pending_rotary is None:
            return qkv
        query, key, *rest = qkv
        q_freqs, k_freqs = self._pending_rotary
        return (self._rotate(query, q_freqs), self._rotate(key, k_freqs), *rest)

    @staticmethod
    def _rotate(states: torch.Tensor, freqs: torch.Tensor | None) -> torch.Tensor:
        if freqs is None:
            return states
        return fused_rotary(states.contiguous(), freqs.to(accumulate_dtype(states.dtype)).contiguous())

    def _can_fuse(self, rotary_pos_emb, inference_context, packed_seq_params, kwargs) -> bool:
        config = self.config
        return (rotary_pos_emb is not None and inference_context is None and kwargs.get("inference_params") is None
                and packed_seq_params is None and not config.rotary_interleaved and not config.no_rope_freq
                and not config.multi_latent_attention and not hasattr(config, "yarn_rotary_scaling_factor")
                and not config.fused_single_qkv_rope
                and all(freqs is None or freqs.shape[-1] == config.kv_channels
                        for freqs in (rotary_pos_emb if isinstance(rotary_pos_emb, tuple) else (rotary_pos_emb,))))
