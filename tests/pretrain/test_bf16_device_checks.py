"""DeepSpeed's bf16 clipping moved onto the device gives DeepSpeed's values, and a non-finite
gradient norm stops the run with one line naming the step (pretrain.training.bf16_device_checks)."""

from __future__ import annotations

import pytest
import torch
from deepspeed.runtime.utils import clip_tensors_by_global_norm, mask_nan_or_inf_with_val_inplace

from pretrain.training.bf16_device_checks import _clip_on_device
from pretrain.training.step_metrics import StepMetrics, TrainingDiverged, check_gradient_norm


@pytest.mark.parametrize("max_norm", [0.5, 1.0, 100.0])  # clipped, at the edge, untouched
def test_device_clipping_equals_deepspeeds(max_norm):
    torch.manual_seed(0)
    grads = [torch.randn(37, 11), torch.randn(5)]
    norm = torch.sqrt(sum(g.pow(2).sum() for g in grads))
    ours, theirs = [g.clone() for g in grads], [g.clone() for g in grads]
    _clip_on_device(ours, max_norm, norm.clone())
    clip_tensors_by_global_norm(theirs, max_norm, norm.clone())
    for a, b in zip(ours, theirs):
        assert torch.equal(a, b)
    assert (max_norm >= norm) == all(torch.equal(a, g) for a, g in zip(ours, grads))


def test_a_masked_non_finite_norm_zeroes_the_gradients_and_stops_the_loop():
    norm = torch.tensor(float("inf"))
    mask_nan_or_inf_with_val_inplace(norm)  # what DeepSpeed's norm holds then: -1
    grads = [torch.ones(4)]
    _clip_on_device(grads, 1.0, norm)
    assert torch.equal(grads[0], torch.zeros(4))
    metrics = StepMetrics(None, 1)
    metrics.record(7, torch.tensor(2.0), norm)
    with pytest.raises(TrainingDiverged, match="not finite at step 7"):
        metrics.check_last_gradient_norm(7)


@pytest.mark.parametrize("norm", [float("nan"), float("inf"), -1.0])
def test_non_finite_norms_are_divergence(norm):
    with pytest.raises(TrainingDiverged, match="at step 12"):
        check_gradient_norm(norm, 12)
    check_gradient_norm(3.5, 12)
