"""The SLURM backend: each step is a job array of ``--tasks`` tasks (one task for a single step),
chained with ``afterok`` dependencies.

Everything goes to ``OUTPUT/slurm/``: ``job.pkl`` (the job, which every task loads), one readable
script per step (``03-dedup-minhash.buckets.sbatch``), the tasks' logs (``logs/``), the submitted
job ids (``state.json``) and the one-line errors of tasks that stopped on bad input (``failed/``).

Submitting runs the job's prologue here (start-up checks and planning: a bad input is one line
on the terminal), then submits from the first step that is not complete: of that step only the
tasks with an unfinished item (a task runs items i, i+N, ... of its step and skips those with a
completion marker), then every later step. So rerunning the same command after a failure
resubmits the failed tasks alone and what depends on them. While jobs of an earlier submission
are still queued or running, a rerun submits nothing (``--wait`` follows them instead).
"""

from __future__ import annotations

import os
import pickle
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from foundation.atomic_write import write_bytes_atomic
from tools.executor.follow import follow
from tools.executor.items import run_step
from tools.executor.job import Job, Step
from tools.executor.markers import Markers
from tools.executor.options import SlurmOptions
from tools.executor.queue import active_tasks, sbatch
from tools.executor.state import SlurmState, array_spec
from tools.stage.errors import InputError

SLURM_DIR = "slurm"
JOB_FILE = "job.pkl"


def write_job_file(job: Job, directory: Path) -> Path:
    """The job as every task loads it."""
    path = Path(directory) / JOB_FILE
    write_bytes_atomic(path, pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL))
    return path


def step_tasks(step: Step, tasks: int) -> int:
    return 1 if step.single else tasks


def missing_tasks(step: Step, tasks: int) -> list[int]:
    """Tasks of ``step`` with an item lacking a matching marker; all of them while its items
    cannot be listed yet (an earlier step has not written what they depend on)."""
    count = step_tasks(step, tasks)
    try:
        items = step.work.items()
        markers = Markers(step.markers)
        unfinished = [i for i, item in enumerate(items) if markers.result(item, step.work.key(item)) is None]
    except (OSError, ValueError, KeyError, InputError):
        return list(range(count))
    return sorted({i % count for i in unfinished})


def first_incomplete(job: Job, tasks: int) -> tuple[int, list[int]]:
    """(index of the first step with unfinished tasks, those tasks); (len(steps), []) when done."""
    for index, step in enumerate(job.steps):
        missing = missing_tasks(step, tasks)
        if missing:
            return index, missing
    return len(job.steps), []


def job_groups(job: Job, start: int) -> list[list[int]]:
    """The steps from ``start`` as SLURM jobs: each multi-task step alone, consecutive one-item
    steps (finish, a pipeline's record, the next stage's plan) together in one job."""
    groups: list[list[int]] = []
    for index in range(start, len(job.steps)):
        single = job.steps[index].single
        if groups and single and job.steps[groups[-1][-1]].single:
            groups[-1].append(index)
        else:
            groups.append([index])
    return groups


def script_text(job: Job, group: list[int], options: SlurmOptions, job_file: Path, logs: Path) -> str:
    step = job.steps[group[0]]
    tasks = step_tasks(step, options.tasks)
    name = f"{group[0] + 1:02d}-{step.name}"
    steps = " + ".join(f"{job.steps[i].description} ({i + 1})" for i in group)
    lines = [
        "#!/bin/bash",
        f"# {job.name}, step{'s' if len(group) > 1 else ''} of {len(job.steps)}: {steps}.",
        f"# {tasks} task(s): task i runs items i, i+{tasks}, ... of the step and skips those already finished",
        "# (completion markers), so any task can be resubmitted alone once the steps before it are done:",
        f"#   sbatch --array=I {shlex.quote(str(logs.parent / (name + '.sbatch')))}",
        f"# Submitted by: {shlex.join(sys.argv)}",
        f"#SBATCH --job-name=qwen-data-{step.name}",
        f"#SBATCH --output=\"{logs / (name + '-%A_%a.log')}\"",  # sbatch splits directives at spaces
        f"#SBATCH --cpus-per-task={options.cpus_per_task}",
        "#SBATCH --kill-on-invalid-dep=yes",
    ]
    for flag, value in (("partition", options.partition), ("time", options.time), ("mem", options.mem)):
        if value:
            lines.append(f"#SBATCH --{flag}={value}")
    lines += [f"#SBATCH {line.removeprefix('#SBATCH').strip()}" for line in options.sbatch_lines]
    lines += ["set -euo pipefail", f"cd {shlex.quote(os.getcwd())}",
              f"exec {shlex.quote(options.python)} -m tools.executor.task {shlex.quote(str(job_file))} "
              f"{' '.join(map(str, group))} --tasks {options.tasks}", ""]
    return "\n".join(lines)


@dataclass(frozen=True)
class SlurmExecutor:
    options: SlurmOptions

    def run(self, job: Job) -> bool:
        """Submit what is unfinished; with ``--wait`` follow it to the end. True when the job is
        finished here (followed), False when it was only submitted."""
        directory = Path(job.output) / SLURM_DIR
        if '"' in str(directory.resolve()):
            raise InputError(f"--output {job.output}: a path with a double quote cannot name SLURM's log files")
        state = SlurmState.load(directory)
        state.check_tasks(self.options.tasks)
        active = active_tasks(state.job_ids())
        if active:
            ids = sorted({task.job_id for task in active})
            if not self.options.wait:
                print(f"{job.name}: jobs {', '.join(map(str, ids))} of an earlier submission are still queued or "
                      "running; nothing submitted (follow them with --wait, or scancel them first)", file=sys.stderr)
                return False
            print(f"{job.name}: following jobs {', '.join(map(str, ids))} of an earlier submission", file=sys.stderr)
        else:
            for step in job.prologue:
                run_step(step, 1, False)
            self.submit(job, state, *first_incomplete(job, self.options.tasks))
        if not self.options.wait:
            return False
        follow(job, state, self, self.options)
        return True

    def submit(self, job: Job, state: SlurmState, start: int, first_tasks: list[int]) -> None:
        """Submit step ``start`` (only ``first_tasks``) and every later step, each after the one before."""
        directory = state.directory
        job_file = write_job_file(job, directory)
        (directory / "logs").mkdir(parents=True, exist_ok=True)
        previous = None
        for group in job_groups(job, start):
            step = job.steps[group[0]]
            tasks = first_tasks if group[0] == start else list(range(step_tasks(step, self.options.tasks)))
            script = directory / f"{group[0] + 1:02d}-{step.name}.sbatch"
            write_bytes_atomic(script, script_text(job, group, self.options, job_file, directory / "logs").encode())
            options = [f"--array={array_spec(tasks)}"] + ([f"--dependency=afterok:{previous}"] if previous else [])
            previous = sbatch(script, options)
            for index in group:
                state.record(index, previous, tasks, time.time())
            names = " + ".join(job.steps[index].description for index in group)
            print(f"  {names}: job {previous}, tasks {array_spec(tasks)}", file=sys.stderr)
        if start < len(job.steps):
            print(f"{job.name}: submitted {len(job.steps) - start} steps (scripts and logs in {directory}/); "
                  "rerun the same command to resubmit what fails", file=sys.stderr)
        else:
            print(f"{job.name}: every step has finished; nothing to submit", file=sys.stderr)
