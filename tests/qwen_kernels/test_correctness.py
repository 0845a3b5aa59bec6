"""The fused kernels against a float64 PyTorch reference, forward and backward.

Tolerances: float32 within 1e-5 (absolute and relative) of float64; bfloat16 and float16 within
one rounding of their format (rtol 1.6e-2 / 2e-3) of the float64 result computed from the same
rounded inputs; float64 within 1e-10. Outputs are poisoned with NaN before every kernel call.
"""

from __future__ import annotations

import pytest
import torch

from qwen_kernels import reference
from qwen_kernels.functions import accumulate_dtype, fused_rmsnorm, fused_rotary, fused_swiglu

TOLERANCES = {
    torch.float64: dict(rtol=1e-10, atol=1e-10),
    torch.float32: dict(rtol=1e-5, atol=1e-5),
    torch.bfloat16: dict(rtol=1.6e-2, atol=1e-2),
    torch.float16: dict(rtol=2e-3, atol=2e-3),
}
DTYPES = list(TOLERANCES)
# CUDA joins where torch sees a GPU (the extension then builds with its CUDA kernels).
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])

# Last dimensions that are not multiples of any vector width, and the Qwen sizes at a few tokens.
RMSNORM_SHAPES = [(1, 1), (3, 7), (2, 5, 33), (4, 130), (5, 2048), (3, 4096), (2, 5120)]
SWIGLU_SHAPES = [(1, 2), (3, 14), (2, 5, 66), (4, 2 * 130 + 2), (2, 2 * 5504), (2, 2 * 11008)]
ROTARY_SHAPES = [(1, 1, 1, 2), (3, 2, 5, 18), (7, 1, 3, 34), (5, 1, 1, 130), (4, 2, 32, 128), (3, 1, 16, 128)]


def assert_matches(actual: torch.Tensor, expected64: torch.Tensor, dtype: torch.dtype) -> None:
    assert actual.dtype == dtype
    assert not actual.isnan().any(), "NaN in the output: an element was never written"
    torch.testing.assert_close(actual.cpu().double(), expected64, **TOLERANCES[dtype])


def grads_of(fn, inputs, grad_out):
    inputs = [t.detach().clone().requires_grad_() for t in inputs]
    out = fn(*inputs)
    return out, torch.autograd.grad(out, inputs, grad_out)


@pytest.mark.usefixtures("ops", "poisoned_outputs")
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", RMSNORM_SHAPES, ids=str)
def test_rmsnorm_matches_float64_reference_forward_and_backward(shape, dtype, device):
    torch.manual_seed(0)
    x = torch.randn(shape, dtype=dtype) * 3
    weight = torch.rand(shape[-1], dtype=dtype) + 0.5
    dy = torch.randn(shape, dtype=dtype)

    out, (dx, dweight) = grads_of(lambda a, w: fused_rmsnorm(a, w, 1e-6),
                                  (x.to(device), weight.to(device)), dy.to(device))
    ref, (dx_ref, dweight_ref) = grads_of(lambda a, w: reference.rmsnorm(a, w, 1e-6),
                                          (x.double(), weight.double()), dy.double())
    assert_matches(out, ref, dtype)
    assert_matches(dx, dx_ref, dtype)
    # dweight sums over every row: allow for the reduction in the tolerance of low precisions.
    rows = x.numel() // shape[-1]
    scale = 1.0 if dtype in (torch.float64, torch.float32) else max(1.0, rows ** 0.5)
    torch.testing.assert_close(dweight.cpu().double(), dweight_ref, rtol=TOLERANCES[dtype]["rtol"] * scale,
                               atol=TOLERANCES[dtype]["atol"] * scale)


@pytest.mark.usefixtures("ops", "poisoned_outputs")
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", SWIGLU_SHAPES, ids=str)
def test_swiglu_matches_float64_reference_forward_and_backward(shape, dtype, device):
    torch.manual_seed(1)
    fc1 = torch.randn(shape, dtype=dtype) * 4
    dout = torch.randn(*shape[:-1], shape[-1] // 2, dtype=dtype)

    out, (dfc1,) = grads_of(fused_swiglu, (fc1.to(device),), dout.to(device))
    ref, (dfc1_ref,) = grads_of(reference.swiglu, (fc1.double(),), dout.double())
    assert out.shape == (*shape[:-1], shape[-1] // 2)
    assert_matches(out, ref, dtype)
    assert_matches(dfc1, dfc1_ref, dtype)


@pytest.mark.usefixtures("ops", "poisoned_outputs")
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", ROTARY_SHAPES, ids=str)
def test_rotary_matches_float64_reference_forward_and_backward(shape, dtype, device):
    torch.manual_seed(2)
    seq, _, _, dim = shape
    x = torch.randn(shape, dtype=dtype)
    # Arbitrary angles (not only cat(f, f)) so that both halves of the sine are exercised.
    freqs = (torch.rand(seq, 1, 1, dim) * 20 - 10).to(accumulate_dtype(dtype))
    dout = torch.randn(shape, dtype=dtype)

    out, (dx,) = grads_of(lambda a: fused_rotary(a, freqs.to(device)), (x.to(device),), dout.to(device))
    ref, (dx_ref,) = grads_of(lambda a: reference.rotary(a, freqs.double()), (x.double(),), dout.double())
    assert_matches(out, ref, dtype)
    assert_matches(dx, dx_ref, dtype)


@pytest.mark.usefixtures("ops")
def test_rotary_with_megatron_angles_matches_reference_at_qwen_head_size():
    x = torch.randn(16, 2, 4, 128)
    freqs = reference.rotary_angles(16, 128)
    torch.testing.assert_close(fused_rotary(x, freqs), reference.rotary(x, freqs), rtol=1e-5, atol=1e-5)


@pytest.mark.usefixtures("ops")
def test_gradcheck_in_float64_on_small_shapes():
    torch.manual_seed(3)
    x = torch.randn(3, 5, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, w: fused_rmsnorm(a, w, 1e-6), (x, weight))
    fc1 = torch.randn(2, 3, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(fused_swiglu, (fc1,))
    q = torch.randn(3, 2, 2, 6, dtype=torch.float64, requires_grad=True)
    freqs = torch.randn(3, 1, 1, 6, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda a: fused_rotary(a, freqs), (q,))


@pytest.mark.usefixtures("ops")
def test_empty_inputs_give_empty_outputs():
    x = torch.empty(0, 8)
    assert fused_rmsnorm(x, torch.ones(8)).shape == (0, 8)
    assert fused_swiglu(torch.empty(0, 8)).shape == (0, 4)
    assert fused_rotary(torch.empty(0, 1, 2, 8), torch.empty(0, 1, 1, 8)).shape == (0, 1, 2, 8)


@pytest.mark.usefixtures("ops")
def test_swiglu_gradient_into_its_input_matches_and_reuses_the_memory():
    torch.manual_seed(4)
    leaf = torch.randn(6, 2 * 37, requires_grad=True)
    dout = torch.randn(6, 37)
    fc1 = leaf * 1.0  # a fresh intermediate, like the MLP's fc1 output
    fc1_memory = fc1.data_ptr()
    grad_memory = []
    fc1.register_hook(lambda grad: grad_memory.append(grad.data_ptr()))
    fused_swiglu(fc1, grad_into_input=True).backward(dout)
    ref_leaf = leaf.detach().double().requires_grad_()
    reference.swiglu(ref_leaf).backward(dout.double())
    torch.testing.assert_close(leaf.grad.double(), ref_leaf.grad, rtol=1e-5, atol=1e-5)
    assert grad_memory == [fc1_memory]


@pytest.mark.usefixtures("ops")
def test_swiglu_gradient_into_input_is_refused_when_another_op_saved_that_input():
    leaf = torch.randn(4, 8, requires_grad=True)
    fc1 = leaf * 1.0
    squared = fc1 * fc1  # saves fc1 for its backward, which runs after the SwiGLU's
    loss = squared.sum() + fused_swiglu(fc1, grad_into_input=True).sum()
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()
