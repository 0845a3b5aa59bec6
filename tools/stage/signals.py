"""SIGINT and SIGTERM end a run cleanly: the parent stops, its workers stop, nothing is orphaned.

The parent turns either signal into ``StopSignal`` (so every writer on the stack deletes its
temporary file on the way out) and terminates its worker pool. Workers ignore SIGINT (a Ctrl-C
reaches the whole process group; the parent decides), leave on SIGTERM through ``SystemExit``
(again deleting their temporary files), and ask the kernel for SIGTERM when the parent dies, so a
SIGKILLed parent leaves no worker behind either.
"""

from __future__ import annotations

import ctypes
import os
import signal
from contextlib import contextmanager
from typing import Iterator

from tools.stage.errors import StopSignal

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


# Signals received in this process. A StopSignal raised while Python runs a finalizer or weakref
# callback is printed as "Exception ignored" and lost; loops that wait check this instead.
received: list[int] = []


def _record(signum: int, frame) -> None:
    received.append(signum)


def _raise_stop(signum: int, frame) -> None:
    # Once: a second signal must not cut short the cleanup the first one started.
    for sig in STOP_SIGNALS:
        signal.signal(sig, _record)
    _record(signum, frame)
    raise StopSignal(signum)


def raise_if_stopped() -> None:
    if received:
        raise StopSignal(received[-1])


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM raise ``StopSignal`` in the main thread."""
    previous = {sig: signal.signal(sig, _raise_stop) for sig in STOP_SIGNALS}
    received.clear()
    try:
        yield
    finally:
        received.clear()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _exit_worker(signum: int, frame) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the parent's terminate() may follow SLURM's SIGTERM
    raise SystemExit(128 + signum)


def _die_with_parent(parent_pid: int) -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: the pool's own shutdown still stops workers
        return
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        raise SystemExit(143)


def prepare_worker(parent_pid: int) -> None:
    """Run first in every worker process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _exit_worker)
    _die_with_parent(parent_pid)
