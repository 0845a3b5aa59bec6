"""``--wait``: follow a submitted job step by step, print progress, resubmit failed tasks alone.

Every ``--poll-interval`` seconds the queue is asked which tasks still run. When a step's latest
submission has no task left in the queue, its completion markers say whether every item finished.
If not, the tasks with unfinished items are resubmitted alone (at most ``--retries`` times each),
after the later steps' jobs (which can never start now) are cancelled and then submitted again
behind them. A task that stopped on bad input is not retried: its one-line error ends the run.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from typing import TYPE_CHECKING

from tools.executor.job import Job
from tools.executor.options import SlurmOptions
from tools.executor.queue import SlurmError, active_tasks, scancel
from tools.executor.state import SlurmState, array_spec, clear_failure, read_failure
from tools.stage.errors import InputError, StopSignal

if TYPE_CHECKING:
    from tools.executor.slurm import SlurmExecutor


def _progress(job: Job, index: int, running: Counter) -> str:
    step = job.steps[index]
    try:
        total = len(step.work.items())
    except (OSError, ValueError, KeyError, InputError):
        total = None
    done = len(list(step.markers.glob("*.json"))) if step.markers.is_dir() else 0
    done = min(done, total) if total is not None else done
    queue = ", ".join(f"{count} {state.lower()}" for state, count in sorted(running.items())) or "none queued"
    return (f"{job.name}: step {index + 1}/{len(job.steps)} {step.description}: "
            f"{done}/{'?' if total is None else total} {step.work.unit}s done; tasks: {queue}")


def _log(executor_directory, index: int, name: str, job_id: int, task: int) -> str:
    return str(executor_directory / "logs" / f"{index + 1:02d}-{name}-{job_id}_{task}.log")


def follow(job: Job, state: SlurmState, executor: "SlurmExecutor", options: SlurmOptions) -> None:
    from tools.executor.slurm import missing_tasks

    retries: Counter[tuple[int, int]] = Counter()
    index, last_line = 0, ""
    started = time.monotonic()
    try:
        while index < len(job.steps):
            submission = state.latest(index)
            active = active_tasks(state.job_ids())
            later = sorted({t.job_id for t in active if submission is None or t.job_id != submission.job_id})
            mine = Counter(t.state for t in active if submission and t.job_id == submission.job_id)
            if mine:
                line = _progress(job, index, mine)
                if line != last_line and options.progress:
                    print(f"[{time.monotonic() - started:7.0f} s] {line}", file=sys.stderr, flush=True)
                last_line = line
                time.sleep(options.poll_seconds)
                continue
            missing = missing_tasks(job.steps[index], options.tasks)
            if not missing:
                index += 1
                continue
            step = job.steps[index]
            failures = {task: read_failure(state.directory, index, task) for task in missing}
            bad = [(task, f) for task, f in failures.items() if f and f["exit_code"] == 2]
            if bad:
                scancel(later)
                raise InputError(bad[0][1]["error"])
            spent = [task for task in missing if retries[(index, task)] >= options.retries]
            if spent:
                scancel(later)
                log = _log(state.directory, index, step.name, submission.job_id, spent[0]) if submission else "?"
                raise SlurmError(f"{step.description}: task {spent[0]} did not finish after {options.retries + 1} "
                                 f"tries; its log: {log}")
            scancel(later)
            for task in missing:
                retries[(index, task)] += 1
                clear_failure(state.directory, index, task)
            print(f"{job.name}: {step.description}: tasks {array_spec(missing)} did not finish; resubmitting them "
                  "alone, then the later steps", file=sys.stderr, flush=True)
            executor.submit(job, state, index, missing)
    except StopSignal:
        ids = sorted({t.job_id for t in active_tasks(state.job_ids())})
        print(f"{job.name}: stopped following; the jobs keep running ({', '.join(map(str, ids)) or 'none left'}); "
              "rerun the same command with --wait to follow them again", file=sys.stderr)
        raise
    if job.report is not None:
        print(job.report(), flush=True)
