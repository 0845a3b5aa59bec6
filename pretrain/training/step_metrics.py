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
import math
import time
from dataclasses import dataclass

import torch


class TrainingDiverged(ValueError):
    """The gradient norm became non-finite: the run stops before it saves the diverged state."""


def check_gradient_norm(norm: float, step: int) -> None:
    """The norm is global (reduced over every rank's gradients), so all ranks decide alike. A
    negative norm is DeepSpeed's mark for a non-finite one (see ``bf16_device_checks``)."""
    if not math.isfinite(norm) or norm < 0:
        raise TrainingDiverged(f"training diverged: the gradient norm is not finite at step {step} (checked at each "
                               "log interval and before each checkpoint, so no checkpoint holds it); resume from the "
                               "last checkpoint with a lower optimizer.lr or more optimizer.warmup_steps")


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

    def check_last_gradient_norm(self, step: int) -> None:
        """Before a checkpoint (a sync point anyway): the last step's gradient norm is finite."""
        check_gradient_norm(float(self.grad_norm), step)

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
