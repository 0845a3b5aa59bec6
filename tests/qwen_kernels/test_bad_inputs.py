"""Bad inputs raise a Python error naming the problem; the process never crashes.

Wrong-device inputs use the ``meta`` device, which exists on every machine.
"""

from __future__ import annotations

import pytest
import torch

from qwen_kernels.functions import fused_rmsnorm, fused_rotary, fused_swiglu


def x_and_weight():
    return torch.randn(4, 8), torch.ones(8)


def rstd_for(ops, x, weight):
    return ops.rmsnorm_forward(x, weight, 1e-6)[1]


RMSNORM_FORWARD_CASES = {
    "non-contiguous x": (lambda: (torch.randn(8, 4).t(), torch.ones(8)), "must be contiguous"),
    "integer x": (lambda: (torch.ones(4, 8, dtype=torch.int64), torch.ones(8, dtype=torch.int64)),
                  "must be float32, float64, bfloat16 or float16"),
    "weight dtype differs": (lambda: (torch.randn(4, 8), torch.ones(8, dtype=torch.bfloat16)), "has dtype"),
    "weight on another device": (lambda: (torch.randn(4, 8), torch.ones(8, device="meta")), "is on meta"),
    "x on an unsupported device": (lambda: (torch.randn(4, 8, device="meta"), torch.ones(8, device="meta")),
                                   "is on meta"),
    "weight length differs": (lambda: (torch.randn(4, 8), torch.ones(7)), r"weight must have shape \[8\]"),
    "scalar x": (lambda: (torch.tensor(1.0), torch.ones(1)), "non-empty last dimension"),
}


@pytest.mark.parametrize("case", RMSNORM_FORWARD_CASES, ids=str)
def test_rmsnorm_forward_rejects(ops, case):
    make, message = RMSNORM_FORWARD_CASES[case]
    x, weight = make()
    with pytest.raises(RuntimeError, match=message):
        ops.rmsnorm_forward(x, weight, 1e-6)


def test_rmsnorm_rejects_negative_eps(ops):
    with pytest.raises(RuntimeError, match="eps must be >= 0"):
        ops.rmsnorm_forward(*x_and_weight(), -1.0)


def test_rmsnorm_backward_rejects_mismatched_gradient_and_rstd(ops):
    x, weight = x_and_weight()
    rstd = rstd_for(ops, x, weight)
    with pytest.raises(RuntimeError, match="dy must have the shape of x"):
        ops.rmsnorm_backward(torch.randn(4, 9), x, weight, rstd)
    with pytest.raises(RuntimeError, match="rstd must hold one value per row"):
        ops.rmsnorm_backward(torch.randn(4, 8), x, weight, rstd[:3].contiguous())
    with pytest.raises(RuntimeError, match="rstd must have dtype"):
        ops.rmsnorm_backward(torch.randn(4, 8), x, weight, rstd.double())


SWIGLU_CASES = {
    "odd last dimension": (lambda: torch.randn(3, 7), "even, non-zero last dimension"),
    "non-contiguous fc1": (lambda: torch.randn(8, 3).t(), "must be contiguous"),
    "integer fc1": (lambda: torch.ones(3, 8, dtype=torch.int32), "must be float32"),
    "fc1 on an unsupported device": (lambda: torch.randn(3, 8, device="meta"), "is on meta"),
}


@pytest.mark.parametrize("case", SWIGLU_CASES, ids=str)
def test_swiglu_forward_rejects(ops, case):
    make, message = SWIGLU_CASES[case]
    with pytest.raises(RuntimeError, match=message):
        ops.swiglu_forward(make())


def test_swiglu_backward_rejects_mismatched_gradient(ops):
    fc1 = torch.randn(3, 8)
    with pytest.raises(RuntimeError, match="dout must have shape"):
        ops.swiglu_backward(torch.randn(3, 8), fc1)
    with pytest.raises(RuntimeError, match="has dtype"):
        ops.swiglu_backward(torch.randn(3, 4, dtype=torch.float64), fc1)


ROTARY_CASES = {
    "3-d x": (lambda: (torch.randn(4, 2, 8), torch.randn(4, 1, 1, 8)), r"must be \[seq, batch, heads, head_dim\]"),
    "odd head dim": (lambda: (torch.randn(4, 1, 2, 7), torch.randn(4, 1, 1, 7)), "head_dim must be even"),
    "freqs for another length": (lambda: (torch.randn(4, 1, 2, 8), torch.randn(5, 1, 1, 8)),
                                 r"freqs must have shape \[4, 1, 1, 8\]"),
    "freqs per batch": (lambda: (torch.randn(4, 2, 2, 8), torch.randn(4, 2, 1, 8)), "freqs must have shape"),
    "bf16 freqs": (lambda: (torch.randn(4, 1, 2, 8), torch.randn(4, 1, 1, 8, dtype=torch.bfloat16)),
                   "freqs must have dtype Float"),
    "non-contiguous x": (lambda: (torch.randn(4, 2, 3, 8).transpose(1, 2), torch.randn(4, 1, 1, 8)),
                         "must be contiguous"),
    "freqs on another device": (lambda: (torch.randn(4, 1, 2, 8), torch.randn(4, 1, 1, 8, device="meta")),
                                "is on meta"),
}


@pytest.mark.parametrize("case", ROTARY_CASES, ids=str)
def test_rotary_rejects(ops, case):
    make, message = ROTARY_CASES[case]
    x, freqs = make()
    with pytest.raises(RuntimeError, match=message):
        ops.rotary_forward(x, freqs)
    with pytest.raises(RuntimeError, match=message):
        ops.rotary_backward(x, freqs)


def test_autograd_functions_surface_the_same_errors():
    with pytest.raises(RuntimeError, match="must be contiguous"):
        fused_rmsnorm(torch.randn(8, 4).t(), torch.ones(8))
    with pytest.raises(RuntimeError, match="even, non-zero last dimension"):
        fused_swiglu(torch.randn(2, 5))
    with pytest.raises(RuntimeError, match="head_dim must be even"):
        fused_rotary(torch.randn(2, 1, 1, 3), torch.randn(2, 1, 1, 3))


def lmhead_inputs():
    return torch.randn(4, 8), torch.randn(10, 8), torch.tensor([0, 9, 3, -100])


LMHEAD_CASES = {
    "non-contiguous hidden": (lambda h, w, y: (torch.randn(8, 4).t(), w, y), "hidden must be contiguous"),
    "non-contiguous weight": (lambda h, w, y: (h, torch.randn(8, 10).t(), y), "weight must be contiguous"),
    "non-contiguous labels": (lambda h, w, y: (h, w, torch.arange(8)[::2]), "labels must be contiguous"),
    "integer hidden": (lambda h, w, y: (h.long(), w.long(), y), "must be float32, float64, bfloat16 or float16"),
    "weight dtype differs": (lambda h, w, y: (h, w.bfloat16(), y), "has dtype"),
    "int32 labels": (lambda h, w, y: (h, w, y.int()), "labels must be int64"),
    "hidden size differs": (lambda h, w, y: (h, torch.randn(10, 7), y), r"weight must be \[rows, 8\]"),
    "labels count differs": (lambda h, w, y: (h, w, y[:3]), r"labels must be \[4\]"),
    "hidden not 2-D": (lambda h, w, y: (h.view(2, 2, 8), w, y), r"hidden must be \[tokens, hidden\]"),
    "label past the vocabulary": (lambda h, w, y: (h, w, torch.tensor([0, 10, 3, 1])), r"labels\[1\] = 10 is outside"),
    "negative label": (lambda h, w, y: (h, w, torch.tensor([0, 1, -3, 1])), r"labels\[2\] = -3 is outside"),
}


@pytest.mark.parametrize("case", LMHEAD_CASES, ids=str)
def test_lmhead_forward_rejects(ops, case):
    h, w, y = LMHEAD_CASES[case][0](*lmhead_inputs())
    with pytest.raises(RuntimeError, match=LMHEAD_CASES[case][1]):
        ops.lmhead_forward(h, w, y, 0, 10, 10, -100)


def test_lmhead_rejects_a_shard_outside_the_vocabulary(ops):
    h, w, y = lmhead_inputs()
    with pytest.raises(RuntimeError, match="valid_rows must be in"):
        ops.lmhead_forward(h, w, y, 0, 11, 10, -100)
    with pytest.raises(RuntimeError, match="must lie in the vocabulary"):
        ops.lmhead_forward(h, w, y, 5, 10, 10, -100)


def test_lmhead_backward_rejects_a_gradient_of_the_wrong_dtype_or_length(ops):
    h, w, y = lmhead_inputs()
    lse = torch.zeros(4)
    with pytest.raises(RuntimeError, match="grad_loss must have dtype"):
        ops.lmhead_backward(torch.zeros(4, dtype=torch.float64), h, w, y, lse, 0, 10, 10)
    with pytest.raises(RuntimeError, match=r"lse must be \[4\]"):
        ops.lmhead_backward(torch.zeros(4), h, w, y, torch.zeros(3), 0, 10, 10)


def test_fused_linear_cross_entropy_names_mismatched_label_shape():
    from qwen_kernels.lmhead import fused_linear_cross_entropy

    with pytest.raises(ValueError, match=r"labels must have shape \(4,\)"):
        fused_linear_cross_entropy(torch.randn(4, 8), torch.randn(10, 8), torch.zeros(5, dtype=torch.long))
