"""A count of records read, shared by worker processes with the parent's progress bar.

Each worker of ``run_shards`` gets the shared counter through the pool initializer; the reader adds
to it as it goes, so the bar shows documents read while large shards are still being processed.
Outside such a worker the counter is absent and counting does nothing.
"""

from __future__ import annotations

from typing import Any

COUNT_EVERY = 1000  # records between updates: keeps the shared lock out of the hot loop

_counter: Any = None  # multiprocessing.Value("q") installed in this worker process, or None


def install(counter: Any) -> None:
    global _counter
    _counter = counter


def add(records: int) -> None:
    if _counter is not None and records:
        with _counter.get_lock():
            _counter.value += records
