"""Autograd functions over the compiled kernels: the differentiable API of ``qwen_kernels``.

Inputs must be contiguous, on one device, of one floating dtype (float32, float64, bfloat16 or
float16); anything else raises a RuntimeError from the extension's checks. The first call
compiles the extension if needed (see qwen_kernels/build.py).
"""

from __future__ import annotations

import torch

from qwen_kernels.build import load


def accumulate_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype the kernels compute in, and the dtype rotary angles must have: fp64 or fp32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


class RMSNormFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
        y, rstd = load().rmsnorm_forward(x, weight, eps)
        ctx.save_for_backward(x, weight, rstd)
        return y

    @staticmethod
    def backward(ctx, dy: torch.Tensor):
        x, weight, rstd = ctx.saved_tensors
        dx, dweight = load().rmsnorm_backward(dy.contiguous(), x, weight, rstd)
        return dx, dweight, None


class SwiGLUFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, fc1: torch.Tensor, grad_into_input: bool) -> torch.Tensor:
        ctx.save_for_backward(fc1)
        ctx.grad_into_input = grad_into_input
        return load().swiglu_forward(fc1)

    @staticmethod
    def backward(ctx, dout: torch.Tensor):
        (fc1,) = ctx.saved_tensors
        return load().swiglu_backward(dout.contiguous(), fc1, ctx.grad_into_input), None


class RotaryFunction(torch.autograd.Function):
    """Rotary angles are constants (megatron-core never trains them): no gradient for freqs."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(freqs)
        return load().rotary_forward(x, freqs)

    @staticmethod
    def backward(ctx, dout: torch.Tensor):
        (freqs,) = ctx.saved_tensors
        return load().rotary_backward(dout.contiguous(), freqs), None


def fused_rmsnorm(x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """x * rsqrt(mean(x^2, -1) + eps) * weight, in fp32, returned in x's dtype."""
    return RMSNormFunction.apply(x, weight, eps)


def fused_swiglu(fc1: torch.Tensor, grad_into_input: bool = False) -> torch.Tensor:
    """silu(gate) * up for fc1 = [gate | up] along the last dimension (megatron-core's layout).

    ``grad_into_input=True`` writes d(fc1) over fc1's own memory in the backward, saving an
    allocation the size of fc1 (as Liger-Kernel's SwiGLU does). Only for an fc1 that nothing else
    uses, such as the MLP's fc1 output; autograd raises if something else saved it.
    """
    return SwiGLUFunction.apply(fc1, grad_into_input)


def fused_rotary(x: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
    """Rotate-half RoPE: x [seq, batch, heads, dim], freqs [seq, 1, 1, dim] (fp32; fp64 for fp64 x)."""
    return RotaryFunction.apply(x, freqs)
