"""Peak host memory of an operation: this process's resident set plus its children's private pages.

A thread samples, every few milliseconds through psutil, the resident set of this process and the
private pages (USS) of its child processes: what a forked checkpoint writer holds beyond the pages
it shares with the training process (those the training process changes while it writes). An
operation's figure is the peak of the sum minus its value just before.
"""

from __future__ import annotations

import threading

import psutil  # DeepSpeed's dependency


def host_bytes(process) -> int:
    """The resident set of ``process`` plus the private pages (USS) of its descendants."""
    total = process.memory_info().rss
    for child in process.children(recursive=True):
        try:
            total += child.memory_full_info().uss
        except (OSError, ValueError):  # the child has just exited
            continue
    return total


class PeakMemory:
    """Peak host bytes above the value at entry, sampled while the block runs."""

    def __init__(self, interval: float = 0.005):
        self.interval, self.peak, self.base = interval, 0, 0
        self._stop = threading.Event()
        self._process = psutil.Process()

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, host_bytes(self._process))

    def __enter__(self):
        self.base = self.peak = host_bytes(self._process)
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, host_bytes(self._process))

    @property
    def above_start(self) -> int:
        return self.peak - self.base
