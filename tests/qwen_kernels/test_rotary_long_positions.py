"""RoPE at long positions (32k and beyond, which context extension reaches) stays within bf16
resolution of a float64 reference, forward and backward, on every device there is (the GPU check
runs this file on CUDA, where a fast-math sin/cos would fail it).

Per rotated pair (x1, x2) of magnitude r, with eps = bf16's machine epsilon (2^-7):
- against float64 angles (the exact rotation): error <= eps * r at positions below 65536. Rounding
  the output to bf16 costs up to eps/2 * r and megatron-core's fp32 angles up to eps/4 * r there
  (half an fp32 ulp of an angle below 65536 is at most 2^-9).
- against the same fp32 angles evaluated in float64 (the kernel's own sin/cos and arithmetic):
  error <= eps/2 * r + 1e-6 * r, up to position 2^20, where an approximate sin/cos is far off.
"""

from __future__ import annotations

import pytest
import torch

from qwen_kernels import reference
from qwen_kernels.functions import fused_rotary

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
EPS = torch.finfo(torch.bfloat16).eps
HEAD_DIM = 128
POSITIONS = 256  # consecutive positions from each start


def pair_errors(actual: torch.Tensor, expected: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """max over the two halves of |actual - expected|, over the pair's magnitude r."""
    half = HEAD_DIM // 2
    error = (actual.double() - expected).abs()
    x = x.double()
    magnitude = torch.sqrt(x[..., :half] ** 2 + x[..., half:] ** 2)
    return torch.maximum(error[..., :half], error[..., half:]) / magnitude


def rotated(x: torch.Tensor, freqs: torch.Tensor, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The kernel's forward and backward (the rotation by minus the angles) of x."""
    leaf = x.to(device).requires_grad_()
    out = fused_rotary(leaf, freqs.to(device))
    (grad,) = torch.autograd.grad(out, leaf, x.to(device))
    return out.detach().cpu(), grad.cpu()


def reference_pair(x: torch.Tensor, angles64: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return reference.rotary(x.double(), angles64), reference.rotary(x.double(), -angles64)


@pytest.mark.usefixtures("ops")
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("first_position", [32768 - POSITIONS // 2, 65536 - POSITIONS])
def test_bf16_rotary_at_long_positions_is_within_bf16_resolution_of_the_exact_rotation(device, first_position):
    torch.manual_seed(5)
    x = torch.randn(POSITIONS, 1, 4, HEAD_DIM).to(torch.bfloat16)
    out, grad = rotated(x, reference.rotary_angles(POSITIONS, HEAD_DIM, first_position=first_position), device)
    exact = reference.rotary_angles(POSITIONS, HEAD_DIM, first_position=first_position, dtype=torch.float64)
    out_ref, grad_ref = reference_pair(x, exact)
    assert pair_errors(out, out_ref, x).max() <= EPS
    assert pair_errors(grad, grad_ref, x).max() <= EPS


@pytest.mark.usefixtures("ops")
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("first_position", [32768, 2 ** 20 - POSITIONS])
def test_bf16_rotary_sin_and_cos_are_accurate_at_large_angles(device, first_position):
    torch.manual_seed(6)
    x = torch.randn(POSITIONS, 1, 4, HEAD_DIM).to(torch.bfloat16)
    freqs = reference.rotary_angles(POSITIONS, HEAD_DIM, first_position=first_position)
    out, grad = rotated(x, freqs, device)
    out_ref, grad_ref = reference_pair(x, freqs.double())
    assert pair_errors(out, out_ref, x).max() <= EPS / 2 + 1e-6
    assert pair_errors(grad, grad_ref, x).max() <= EPS / 2 + 1e-6
