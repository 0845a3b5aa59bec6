"""MFU's two FLOP counts and the peak table: checked against figures worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from pretrain.config import load_config
from pretrain.training.metrics import flops_per_token, gpu_peak_tflops, model_flops_utilization


def test_qwen_7b_flops_per_token_both_ways_at_seq_2048():
    model = load_config(None, ["model.preset=qwen-7b", "model.seq_length=2048"]).model
    flops = flops_per_token(model)
    # N = 7,721,324,544 parameters less the 151,936 x 4096 input embedding.
    dense = 6 * (7_721_324_544 - 151_936 * 4096)
    attention = 6 * 32 * 4096 * 2048
    assert flops.causal == dense + attention
    assert flops.palm == dense + 2 * attention
    assert round(flops.causal / 1e9, 1) == 44.2 and round(flops.palm / 1e9, 1) == 45.8


@pytest.mark.parametrize("name, peak", [
    ("NVIDIA H100 80GB HBM3", 989.0), ("NVIDIA H100 PCIe", 756.0), ("NVIDIA H100 NVL", 835.0),
    ("NVIDIA H200", 989.0), ("NVIDIA H200 NVL", 835.0), ("NVIDIA GH200 480GB", 989.0),
    ("NVIDIA A100-SXM4-80GB", 312.0), ("NVIDIA A100 80GB PCIe", 312.0), ("NVIDIA A10", 125.0),
    ("NVIDIA L40S", 362.0)])
def test_peak_comes_from_the_exact_part(name, peak):
    assert gpu_peak_tflops(name)[0] == peak


def test_unknown_gpu_has_no_peak_and_mfu_is_nan_without_one():
    assert gpu_peak_tflops("NVIDIA GeForce RTX 4090") is None
    assert math.isnan(model_flops_utilization(1e4, 4e10, 0.0, 8))
    assert model_flops_utilization(10_000, 44.2e9, 989.0, 1) == pytest.approx(0.4469, abs=1e-4)



def test_the_cpu_peak_is_measured_in_the_runs_precision(monkeypatch):
    from pretrain.training import metrics

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    measured = []
    real = metrics.measured_cpu_peak_tflops
    monkeypatch.setattr(metrics, "measured_cpu_peak_tflops",
                        lambda dtype: measured.append(dtype) or real(dtype, size=256, repeats=1))
    for precision, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        peak, source = metrics.device_peak_tflops(None, precision)
        assert peak > 0 and source == f"measured CPU {precision} matmul" and measured[-1] == dtype
