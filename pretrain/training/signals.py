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

    def agreed(self) -> bool:
        """True on every rank once any rank got a signal, so all stop after the same step."""
        device = "cuda" if torch.cuda.is_available() else "cpu"
        flag = torch.tensor([1.0 if self.signal_name else 0.0], device=device)
        if torch.distributed.is_initialized() and torch.distributed.get_world_size() > 1:
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        if flag.item() and self.signal_name is None:
            self.signal_name = "peer"
        return bool(flag.item())
