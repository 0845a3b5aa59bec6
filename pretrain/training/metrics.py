"""Training metrics: console line, JSONL file and TensorBoard, plus the MFU estimate.

MFU = achieved model FLOP/s / (peak FLOP/s per device x devices), with the model FLOPs of one
training token (forward + backward) taken as ``6 * N + 12 * L * h * s``: N the parameters that do
matrix work (all but the input embedding lookup), L layers, h hidden size, s sequence length (the
attention score and context matmuls; PaLM's appendix B formula).
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time

import torch

from pretrain.config import ModelConfig
from pretrain.model.builder import count_parameters

# Dense bf16 tensor-core peaks (TFLOP/s) by device-name fragment.
_GPU_PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0, "V100": 125.0}


def flops_per_token(model: ModelConfig) -> float:
    parts = count_parameters(model)
    matmul_parameters = parts["total"] - parts["input_embedding"]
    return 6.0 * matmul_parameters + 12.0 * model.num_layers * model.hidden_size * model.seq_length


def measured_cpu_peak_tflops(size: int = 1024, repeats: int = 5) -> float:
    """On a CPU there is no datasheet figure to use: take the fp32 matmul rate measured here."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2.0 * size**3 * repeats / (time.perf_counter() - start) / 1e12


def device_peak_tflops(configured: float | None) -> tuple[float, str]:
    if configured:
        return configured, "configured"
    if torch.cuda.is_available():
        name = torch.cuda.get_device_name()
        for fragment, peak in _GPU_PEAK_TFLOPS.items():
            if fragment in name:
                return peak, f"{name} datasheet bf16"
        return 0.0, f"{name}: unknown peak, set logging.peak_tflops"
    return measured_cpu_peak_tflops(), "measured CPU fp32 matmul"


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
