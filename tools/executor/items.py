"""Running a step's items: skip those whose marker matches, run the rest ``workers`` at a time on
forked worker processes (``tools.stage.pool``), and mark each one when it is done.

Both executors use this: the local one for every item of a step, a SLURM task for its own share
of the items (``task_items``), with the task's CPUs as workers.
"""

from __future__ import annotations

import functools
import sys
import time
from dataclasses import dataclass
from typing import Any

from tqdm import tqdm

from tools.executor.job import Step
from tools.executor.markers import Markers
from tools.executor.memory import peak_mb, reset_peak
from tools.stage.errors import StopSignal
from tools.stage.pool import run_in_workers
from tools.stage.signals import raise_if_stopped

PROGRESS_INTERVAL_S = 0.5


def task_items(items: list[str], task: int, tasks: int) -> list[str]:
    """The items task ``task`` of ``tasks`` runs: every ``tasks``-th, from its own number on."""
    return items[task::tasks]


def _run_and_mark(step: Step, todo: tuple[str, dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    item, key = todo
    started, clock, cpu = time.time(), time.perf_counter(), time.process_time()
    reset_peak()
    result = step.work.run(item)
    Markers(step.markers).mark(item, key, result, started, time.perf_counter() - clock, time.process_time() - cpu,
                               peak_mb())
    return item, result


@dataclass
class StepOutcome:
    results: dict[str, dict[str, Any]]  # item -> result, in item order
    skipped: int  # items finished by an earlier run


def _documents(results: dict[str, dict[str, Any]]) -> int:
    return sum(int(r.get("in", r.get("documents", 0))) for r in results.values())


def run_step(step: Step, workers: int, progress: bool = True, items: list[str] | None = None) -> StepOutcome:
    """Run ``items`` of ``step`` (default: all) that have no matching marker; a single step always
    runs (it is cheap: planning, totals). A ``StopSignal`` stops the workers and leaves with
    ``finished`` / ``total`` / ``unit`` set on it."""
    names = step.work.items() if items is None else items
    markers = Markers(step.markers)
    done: dict[str, dict[str, Any]] = {}
    todo = []
    for item in names:
        key = step.work.key(item)
        result = None if step.single else markers.result(item, key)
        if result is None:
            todo.append((item, key))
        else:
            done[item] = result
    unit = step.work.unit
    skipped = len(done)
    if skipped and not step.single:
        print(f"{step.description}: {skipped} of {len(names)} {unit}s finished earlier, skipped", file=sys.stderr)
    bar = tqdm(total=len(todo), desc=step.description, unit=unit, disable=not progress or not todo or step.single,
               file=sys.stderr)

    def finish(item: str, result: dict[str, Any]) -> None:
        done[item] = result
        bar.update(1)

    try:
        with bar:
            if workers <= 1 or len(todo) <= 1:
                for pending in todo:
                    finish(*_run_and_mark(step, pending))
                    raise_if_stopped()
                    bar.set_postfix(docs=_documents(done))
            else:
                run_in_workers(functools.partial(_run_and_mark, step), todo, workers,
                               on_result=lambda pair: finish(*pair),
                               on_wait=lambda read: bar.set_postfix(docs_read=read), wait_s=PROGRESS_INTERVAL_S)
    except StopSignal as stop:
        stop.finished, stop.total, stop.unit = len(done), len(names), unit
        raise
    return StepOutcome({item: done[item] for item in names}, skipped)
