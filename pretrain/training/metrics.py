"""Training metrics: console line, JSONL file and TensorBoard, plus MFU both ways.

MFU = achieved model FLOP/s / (peak FLOP/s per device x devices). The model FLOPs of one training
token (forward + backward) are counted two ways, N being the parameters that do matrix work (all
but the input embedding lookup, so the output layer counts), L layers, h hidden size, s sequence
length:
- ``causal``: ``6N + 6 L h s``, the convention of Megatron-Bridge (and MLPerf): the attention score
  and context matmuls over the causal half of the score matrix only, which is what flash attention
  computes. Reported as ``mfu``.
- ``palm``: ``6N + 12 L h s``, PaLM's appendix B, which counts the whole score matrix. Reported as
  ``mfu_palm``; higher by 6 L h s per token.
For Qwen-7B at s = 2048 they are 44.2 and 45.8 GFLOP per token.
"""

from __future__ import annotations

import json
import os
import re
import resource
import sys
import time
from dataclasses import dataclass

import torch

from pretrain.config import ModelConfig
from pretrain.model.builder import count_parameters

# Dense bf16 tensor-core peaks (TFLOP/s, NVIDIA datasheets, without sparsity) by device name, as
# torch.cuda.get_device_name gives it: the first pattern that matches wins, so the PCIe and NVL
# parts come before the SXM part of the same name ("NVIDIA H100 80GB HBM3" is the SXM H100).
GPU_PEAK_TFLOPS = (
    (r"H100.*NVL", 835.0, "H100 NVL"),
    (r"H100.*PCIe", 756.0, "H100 PCIe"),
    (r"H100", 989.0, "H100 SXM"),
    (r"H200.*NVL", 835.0, "H200 NVL"),
    (r"H200", 989.0, "H200 SXM"),  # also GH200
    (r"B200", 2250.0, "B200"),
    (r"A100", 312.0, "A100"),  # SXM and PCIe alike
    (r"L40S", 362.0, "L40S"),
    (r"\bA10\b", 125.0, "A10"),
)


@dataclass(frozen=True)
class TokenFlops:
    """Model FLOPs of one training token (forward and backward), counted both ways."""

    causal: float
    palm: float


def flops_per_token(model: ModelConfig) -> TokenFlops:
    parts = count_parameters(model)
    dense = 6.0 * (parts["total"] - parts["input_embedding"])
    attention = 6.0 * model.num_layers * model.hidden_size * model.seq_length  # causal half
    return TokenFlops(causal=dense + attention, palm=dense + 2.0 * attention)


def model_flops_utilization(tokens_per_second: float, flops: float, peak_tflops: float, devices: int) -> float:
    """The fraction of the devices' peak that the model's FLOPs at this rate make; NaN without a peak."""
    return tokens_per_second * flops / (peak_tflops * 1e12 * devices) if peak_tflops else float("nan")


def gpu_peak_tflops(name: str) -> tuple[float, str] | None:
    """(peak, which part) for a device name from the table, None for a device not in it."""
    for pattern, peak, part in GPU_PEAK_TFLOPS:
        if re.search(pattern, name, re.IGNORECASE):
            return peak, part
    return None


def measured_cpu_peak_tflops(dtype: torch.dtype = torch.float32, size: int = 1024, repeats: int = 5) -> float:
    """On a CPU there is no datasheet figure to use: take the matmul rate measured here, in the
    run's dtype (a CPU with AMX multiplies bf16 several times faster than fp32)."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2.0 * size**3 * repeats / (time.perf_counter() - start) / 1e12


def device_peak_tflops(configured: float | None, precision: str = "fp32") -> tuple[float, str]:
    if configured:
        return configured, "configured"
    if torch.cuda.is_available():
        name = torch.cuda.get_device_name()
        known = gpu_peak_tflops(name)
        if known is None:
            return 0.0, f"{name}: unknown peak, set logging.peak_tflops"
        return known[0], f"{name}: {known[1]} datasheet dense bf16"
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    return measured_cpu_peak_tflops(dtype), f"measured CPU {precision} matmul"


def memory_gib() -> float:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux reports KiB


class MetricsLogger:
    """Writes on rank 0 only; other ranks get a logger that does nothing."""

    def __init__(self, directory: str, enabled: bool, tensorboard: bool):
        self.enabled = enabled
        self.writer = None
        self.jsonl = None
        if not enabled:
            return
        os.makedirs(directory, exist_ok=True)
        self.jsonl = open(os.path.join(directory, "metrics.jsonl"), "a", buffering=1)
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(os.path.join(directory, "tensorboard"))

    def log(self, step: int, metrics: dict, console: str | None = None) -> None:
        if not self.enabled:
            return
        if console:
            print(console, flush=True)
        self.jsonl.write(json.dumps({"step": step, **metrics}) + "\n")
        if self.writer is not None:
            for key, value in metrics.items():
                if isinstance(value, (int, float)):
                    self.writer.add_scalar(key, value, step)

    def info(self, message: str) -> None:
        if self.enabled:
            print(message, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.jsonl is not None:
            self.jsonl.close()
        if self.writer is not None:
            self.writer.close()
