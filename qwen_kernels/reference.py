"""The fused ops in plain PyTorch: the float64 reference of the tests and the eager (and
``torch.compile``) baseline of the benchmarks. Same math as megatron-core's unfused path.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def rmsnorm(x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Normalised in fp32 (fp64 for fp64 inputs), returned in x's dtype."""
    compute = x.to(torch.promote_types(x.dtype, torch.float32))
    normed = compute * torch.rsqrt(compute.pow(2).mean(-1, keepdim=True) + eps)
    return (normed * weight.to(compute.dtype)).to(x.dtype)


def swiglu(fc1: torch.Tensor) -> torch.Tensor:
    """megatron-core's gated-linear-unit step: fc1 = [gate | up], out = silu(gate) * up."""
    gate, up = torch.chunk(fc1, 2, dim=-1)
    return F.silu(gate) * up


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    first, second = torch.chunk(x, 2, dim=-1)
    return torch.cat((-second, first), dim=-1)


def rotary(x: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
    """Rotate-half RoPE: x [seq, batch, heads, dim], freqs [seq, 1, 1, dim] of angles."""
    cos = torch.cos(freqs).to(x.dtype)
    sin = torch.sin(freqs).to(x.dtype)
    return x * cos + rotate_half(x) * sin


def rotary_angles(seq: int, dim: int, base: float = 10000.0, first_position: int = 0,
                  dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """megatron-core's layout of RoPE angles: [seq, 1, 1, dim] = cat(freqs, freqs), computed in
    ``dtype`` (megatron-core's fp32 by default) from fp32 inverse frequencies (Qwen's)."""
    inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
    positions = torch.arange(first_position, first_position + seq, dtype=dtype)
    angles = torch.outer(positions, inv_freq.to(dtype))
    return torch.cat((angles, angles), dim=-1)[:, None, None, :]


def linear_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor,
                         vocab_size: int | None = None, ignore_index: int = -100) -> torch.Tensor:
    """Per-token cross-entropy of the logits ``hidden @ weight.T``, materialized, in fp32 (fp64
    for fp64 inputs); rows of ``weight`` from ``vocab_size`` on (padding) are left out."""
    logits = F.linear(hidden, weight[:vocab_size] if vocab_size is not None else weight)
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
    return F.cross_entropy(logits.flatten(0, -2), labels.flatten(), reduction="none",
                           ignore_index=ignore_index).view(labels.shape)
