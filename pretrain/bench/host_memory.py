"""Peak host memory of an operation: this process's resident set and its children's private pages.

A thread samples, every few milliseconds through psutil, the resident set of this process and the
private pages (USS) of its child processes: what a forked checkpoint writer holds beyond the pages
it shares with the training process (the pages the training process changes while it writes, and
the writer's own buffers). Both are kept apart, so that an operation running beside training (an
asynchronous save) can be charged with its writer's pages but not with the training step's own.

Reading a child's private pages walks its page tables (/proc/PID/smaps: about 75 ms for a child
forked from a 4.5 GB process), so the children are sampled every 250 ms, and not at all where the
figure is a time the sampling would distort (``children=False``): sampled every 5 ms, four ranks'
samplers kept about four cores busy on this benchmark's 2-core machine and slowed what they
measured.
"""

from __future__ import annotations

import threading
import time

import psutil  # DeepSpeed's dependency


def _children_private_bytes(process: psutil.Process) -> int:
    total = 0
    for child in process.children(recursive=True):
        try:
            total += child.memory_full_info().uss
        except (OSError, ValueError, psutil.Error):  # the child has just exited
            continue
    return total


class PeakMemory:
    """Peak host bytes while the block runs: of this process above its value at entry
    (``own_above_start``), of its children (``children_peak``), and of their sum above its value at
    entry (``above_start``)."""

    def __init__(self, interval: float = 0.005, children_interval: float = 0.25, children: bool = True):
        self.interval, self.children_interval, self.children = interval, children_interval, children
        self._stop = threading.Event()
        self._process = psutil.Process()
        self._children_now = 0
        self._children_sampled_at = 0.0
        self.own_base = self.own_peak = self.children_base = self.children_peak = self.sum_peak = 0

    def _sample(self, children_now: bool = False) -> None:
        own = self._process.memory_info().rss
        if self.children and (children_now or time.monotonic() - self._children_sampled_at >= self.children_interval):
            self._children_now = _children_private_bytes(self._process)
            self._children_sampled_at = time.monotonic()
        self.own_peak, self.children_peak = max(self.own_peak, own), max(self.children_peak, self._children_now)
        self.sum_peak = max(self.sum_peak, own + self._children_now)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self):
        self.own_base = self.own_peak = self._process.memory_info().rss
        self.children_base = self.children_peak = self._children_now = (
            _children_private_bytes(self._process) if self.children else 0)
        self._children_sampled_at = time.monotonic()
        self.sum_peak = self.own_base + self.children_base
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample(children_now=True)

    @property
    def above_start(self) -> int:
        return self.sum_peak - self.own_base - self.children_base

    @property
    def own_above_start(self) -> int:
        return self.own_peak - self.own_base
