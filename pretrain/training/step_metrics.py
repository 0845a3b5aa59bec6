"""Step metrics without host stalls, and a throughput window that counts training time only.

A step's loss and gradient norm stay on the device as tensors. At a log interval the losses of
the interval are averaged over data parallel, stacked with the last gradient norm and the stop flag,
and read in one host sync: between log intervals the host never waits for the device, so it keeps
queueing work ahead of it.

Evaluation and checkpoints are timed out of the throughput window: entering one waits for the
training work already queued (so it counts as training), and the time until it ends is excluded.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

import torch


@dataclass
class IntervalReading:
    losses: dict[int, float]  # step -> global-batch loss (mean over data parallel)
    grad_norm: float  # of the interval's last step
    stop: float  # the reduced stop flag


class StepMetrics:
    def __init__(self, dp_group, dp_size: int):
        self.dp_group, self.dp_size = dp_group, dp_size
        self.steps: list[int] = []
        self.losses: list[torch.Tensor] = []
        self.grad_norm: torch.Tensor | float = 0.0

    def record(self, step: int, loss: torch.Tensor, grad_norm: torch.Tensor | float) -> None:
        self.steps.append(step)
        self.losses.append(loss.detach().float().reshape(()))
        self.grad_norm = grad_norm

    def read(self, stop_flag: torch.Tensor) -> IntervalReading:
        """Collective over all ranks; the one host sync of a log interval."""
        losses = torch.stack(self.losses)
        if self.dp_size > 1:
            torch.distributed.all_reduce(losses, group=self.dp_group)
            losses /= self.dp_size
        grad_norm = torch.as_tensor(self.grad_norm, dtype=torch.float32, device=losses.device).reshape(1)
        *values, norm, stop = torch.cat([losses, grad_norm, stop_flag.float().to(losses.device)]).tolist()
        reading = IntervalReading(dict(zip(self.steps, values)), norm, stop)
        self.steps, self.losses = [], []
        return reading


def wait_for_device() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


class ThroughputWindow:
    """Seconds and steps of training since the last log, evaluation and checkpoint time left out."""

    def __init__(self):
        self.restart()

    def restart(self) -> None:
        self.start, self.steps, self.excluded = time.perf_counter(), 0, 0.0

    def count_step(self) -> None:
        self.steps += 1

    @contextlib.contextmanager
    def excluding(self):
        wait_for_device()
        began = time.perf_counter()
        try:
            yield
        finally:
            self.excluded += time.perf_counter() - began

    def seconds(self) -> float:
        return time.perf_counter() - self.start - self.excluded
