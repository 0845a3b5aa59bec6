"""SIGTERM/SIGINT (SLURM preemption, Ctrl-C) become a request to checkpoint and stop cleanly."""

from __future__ import annotations

import signal

import torch


class StopRequest:
    def __init__(self):
        self.signal_name: str | None = None
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)

    def _handle(self, signum, frame) -> None:
        self.signal_name = signal.Signals(signum).name

    def reduced_flag(self, device: torch.device) -> torch.Tensor:
        """1.0 on every rank once any rank got a signal (MAX over all ranks), left on the device: the
        caller reads it with the step metrics in one host sync, and all ranks stop after the same step."""
        flag = torch.tensor([1.0 if self.signal_name else 0.0], device=device)
        if torch.distributed.is_initialized() and torch.distributed.get_world_size() > 1:
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        return flag

    def agreed(self, reduced_flag: float) -> bool:
        if reduced_flag and self.signal_name is None:
            self.signal_name = "peer"
        return bool(reduced_flag)
