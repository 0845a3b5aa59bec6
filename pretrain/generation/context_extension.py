"""Qwen's training-free context extension as formulas (Qwen report §2.5, Qwen's public modeling_qwen.py).

- Dynamic NTK-aware interpolation: for a sequence of L tokens and a training context of T, the
  rotary base grows to ``base * alpha ** (d / (d - 2))`` with ``alpha = 2**ceil(log2(L / T) + 1) - 1``
  (1 up to T, 3 up to 2T, 7 up to 4T, ...), ``d`` the rotary dimension. Low frequencies are
  stretched to cover the longer range while the highest stays (nearly) as trained.
- LogN attention scaling: the query at 1-based position ``i > T`` is multiplied by
  ``log(i) / log(T)``, which keeps the attention entropy near its trained level as the number of
  keys grows.

Both are the identity for sequences within T. :mod:`pretrain.generation.extended_model` applies
them to megatron-core's GPTModel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

# The longest total length (prompt + new tokens), in training lengths, that generation accepts:
# Qwen's public code tabulates LogN factors up to 16 x its 2048-token training length, and the
# report evaluates up to 16x.
MAX_LENGTH_FACTOR = 16


@dataclass(frozen=True)
class ExtensionSettings:
    dynamic_ntk: bool = True
    logn: bool = True


def max_total_length(train_length: int) -> int:
    """The longest prompt + new tokens generation accepts."""
    return MAX_LENGTH_FACTOR * train_length


def ntk_alpha(length: int, train_length: int) -> int:
    """The dynamic-NTK factor for a sequence of ``length`` tokens."""
    return int(max(2 ** math.ceil(math.log2(length / train_length) + 1) - 1, 1))


def ntk_rotary_base(base: float, alpha: int, rotary_dim: int) -> float:
    return base * alpha ** (rotary_dim / (rotary_dim - 2))


def rotary_inverse_frequencies(base: float, rotary_dim: int, device: torch.device | None = None) -> torch.Tensor:
    """``1 / base ** (2j / d)`` in fp32: megatron-core's RotaryEmbedding expression, bit for bit."""
    return 1.0 / (base ** (torch.arange(0, rotary_dim, 2, dtype=torch.float32, device=device) / rotary_dim))


def logn_scale(positions: torch.Tensor, train_length: int) -> torch.Tensor:
    """Query factors for 1-based ``positions``: ``log(i) / log(T)`` beyond T, exactly 1 within (fp32)."""
    positions = positions.to(torch.float64)
    return torch.where(positions > train_length, positions.log() / math.log(train_length),
                       torch.ones_like(positions)).to(torch.float32)
