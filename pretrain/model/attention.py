"""Core attention for the Qwen layer: flash-attn on GPU when installed, else torch SDPA.

On CUDA, SDPA is asked for its kernels in the order flash, cuDNN, memory-efficient, math; it takes
the first that supports the inputs (flash and cuDNN need bf16/fp16, so an fp32 run gets the
memory-efficient kernel). flash-attn itself only computes in bf16/fp16: other dtypes go to SDPA.
Every backend computes the same softmax(q k^T * scale) v, which tests compare on CPU (SDPA and
megatron's unfused attention).

Both subclass megatron-core's ``DotProductAttention`` (the unfused fallback) so they share its
per-partition head arithmetic and plug into ``SelfAttentionSubmodules.core_attention``. Inputs are
megatron's [seq, batch, heads, head_dim]; the output is [seq, batch, heads * head_dim].
"""

from __future__ import annotations

import importlib.util

import torch
import torch.nn.functional as F
from megatron.core import tensor_parallel
from megatron.core.transformer.dot_product_attention import DotProductAttention
from megatron.core.transformer.enums import AttnMaskType
from torch.nn.attention import SDPBackend, sdpa_kernel

FLASH_ATTN_DTYPES = (torch.bfloat16, torch.float16)
_CUDA_SDPA_PRIORITY = [SDPBackend.FLASH_ATTENTION, SDPBackend.CUDNN_ATTENTION, SDPBackend.EFFICIENT_ATTENTION,
                       SDPBackend.MATH]


def flash_attn_installed() -> bool:
    return importlib.util.find_spec("flash_attn") is not None


class SDPACoreAttention(DotProductAttention):
    """Causal attention through ``torch.nn.functional.scaled_dot_product_attention``."""

    def forward(self, query, key, value, attention_mask, attn_mask_type=None, attention_bias=None,
                packed_seq_params=None):
        if packed_seq_params is not None or attention_bias is not None:
            raise NotImplementedError("SDPACoreAttention supports neither packed sequences nor attention bias")
        mask_type = attn_mask_type or self.attn_mask_type
        # [s, b, h, d] -> [b, h, s, d]
        q, k, v = (t.permute(1, 2, 0, 3) for t in (query, key, value))
        dropout = self.attention_dropout.p if self.training else 0.0
        causal = mask_type == AttnMaskType.causal
        if dropout > 0.0 and not self.config.sequence_parallel:
            # Heads are split across TP ranks, so dropout must draw from the TP-region generator.
            with tensor_parallel.get_cuda_rng_tracker().fork():
                context = self._attend(q, k, v, attention_mask, causal, dropout)
        else:
            context = self._attend(q, k, v, attention_mask, causal, dropout)
        # [b, h, s, d] -> [s, b, h * d]
        return context.permute(2, 0, 1, 3).reshape(query.size(0), query.size(1), self.hidden_size_per_partition)

    def _attend(self, q, k, v, attention_mask, causal, dropout):
        if q.is_cuda:
            with sdpa_kernel(_CUDA_SDPA_PRIORITY, set_priority=True):
                return self._sdpa(q, k, v, attention_mask, causal, dropout)
        return self._sdpa(q, k, v, attention_mask, causal, dropout)

    def _sdpa(self, q, k, v, attention_mask, causal, dropout):
        # As in megatron's unfused attention, a mask that is given is the whole mask, causal part
        # included (generation passes one for left-padded prompts); training passes none.
        if causal and attention_mask is None:
            return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=True, scale=self.softmax_scale)
        # megatron masks are True where attention is NOT allowed; SDPA's boolean mask is the opposite.
        mask = None if attention_mask is None else ~attention_mask
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout, scale=self.softmax_scale)


class FlashCoreAttention(SDPACoreAttention):
    """flash-attn's kernel for causal bf16/fp16 attention on CUDA; SDPA for anything else (fp32, an
    explicit mask included)."""

    def forward(self, query, key, value, attention_mask, attn_mask_type=None, attention_bias=None,
                packed_seq_params=None):
        mask_type = attn_mask_type or self.attn_mask_type
        if (not query.is_cuda or query.dtype not in FLASH_ATTN_DTYPES or mask_type != AttnMaskType.causal
                or packed_seq_params is not None or attention_mask is not None):
            return super().forward(query, key, value, attention_mask, attn_mask_type, attention_bias,
                                   packed_seq_params)
        from flash_attn import flash_attn_func

        dropout = self.attention_dropout.p if self.training else 0.0
        # flash-attn wants [b, s, h, d]
        q, k, v = (t.transpose(0, 1) for t in (query, key, value))
        with tensor_parallel.get_cuda_rng_tracker().fork():
            context = flash_attn_func(q, k, v, dropout_p=dropout, softmax_scale=self.softmax_scale, causal=True)
        return context.transpose(0, 1).reshape(query.size(0), query.size(1), self.hidden_size_per_partition)


def core_attention_class(backend: str) -> type:
    """``auto``: flash-attn when installed and CUDA is present, else SDPA."""
    if backend == "auto":
        backend = "flash" if flash_attn_installed() and torch.cuda.is_available() else "sdpa"
    if backend == "flash" and not flash_attn_installed():
        raise RuntimeError("model.attention_backend is 'flash' but flash-attn is not installed (pip install .[gpu])")
    return {"flash": FlashCoreAttention, "sdpa": SDPACoreAttention, "unfused": DotProductAttention}[backend]
