"""A small process pool for shard tasks: one pipe per worker, no lock shared between processes.

``multiprocessing.Pool`` shares one task queue (and its lock) among its workers; a worker that a
signal ends while it waits on that queue leaves the lock held, and ``Pool.terminate`` then waits
for it forever. Here each worker reads its next shard from its own pipe, so stopping the workers
at any moment (SIGTERM, the parent's death) never blocks the parent.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import traceback
from multiprocessing.connection import Connection, wait
from typing import Any, Callable

from foundation.records import progress as progress_counter
from tools.stage.errors import StopSignal
from tools.stage.signals import STOP_SIGNALS, prepare_worker, raise_if_stopped

_STOP_EXIT_CODES = {128 + signal.SIGTERM: signal.SIGTERM, 128 + signal.SIGINT: signal.SIGINT,
                    -signal.SIGTERM: signal.SIGTERM, -signal.SIGINT: signal.SIGINT}


def _worker(connection: Connection, run_one: Callable, counter: Any, parent_pid: int) -> None:
    prepare_worker(parent_pid)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)  # blocked across the fork, see below
    progress_counter.install(counter)
    while (item := connection.recv()) is not None:
        try:
            connection.send(("done", run_one(item)))
        except Exception:  # a bug in a stage: the parent reports it with this traceback
            connection.send(("failed", traceback.format_exc()))
            return


class WorkerFailed(RuntimeError):
    """A worker raised or died; the message holds its traceback or exit code."""


def run_in_workers(run_one: Callable[[Any], Any], items: list[Any], workers: int, on_result: Callable[[Any], None],
                   on_wait: Callable[[int], None], wait_s: float) -> None:
    """``on_result(run_one(item))`` in this process for every item, ``workers`` at a time (forked
    processes); ``on_wait(records read so far)`` every ``wait_s`` seconds without a result."""
    # fork: stages defined anywhere (a test, a notebook) reach the workers without being
    # importable; the parent holds no locks that the workers use.
    context = multiprocessing.get_context("fork")
    counter = context.Value("q", 0)
    pending = list(reversed(items))
    running: dict[Connection, tuple[Any, Any]] = {}  # parent end -> (process, item it works on)
    started = []
    try:
        for _ in range(min(workers, len(items))):
            parent_end, child_end = context.Pipe()
            process = context.Process(target=_worker, args=(child_end, run_one, counter, os.getpid()), daemon=True)
            # A signal between fork and the worker's own handlers would meet the parent's handler
            # in the child; blocked, it waits until the worker is ready for it.
            signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
            try:
                process.start()
                started.append(process)
            finally:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
            child_end.close()
            item = pending.pop()
            parent_end.send(item)
            running[parent_end] = (process, item)
        while running:
            ready = wait(list(running), timeout=wait_s)
            raise_if_stopped()
            if not ready:
                on_wait(counter.get_obj().value)  # no lock: a stopped worker may hold it
            for connection in ready:
                process, item = running[connection]
                try:
                    status, value = connection.recv()
                except EOFError:
                    process.join()
                    if process.exitcode in _STOP_EXIT_CODES:  # the signal reached the workers first
                        raise StopSignal(_STOP_EXIT_CODES[process.exitcode]) from None
                    raise WorkerFailed(f"the worker for {item} died (exit code {process.exitcode})") from None
                if status == "failed":
                    raise WorkerFailed(f"the worker for {item} failed:\n{value}")
                on_result(value)
                if pending:
                    running[connection] = (process, pending.pop())
                    connection.send(running[connection][1])
                else:
                    connection.send(None)
                    del running[connection]
                    process.join()
    finally:
        for process in started:
            if process.is_alive():
                process.terminate()  # SIGTERM: the worker's writers delete their temporary files
        for process in started:
            process.join()
