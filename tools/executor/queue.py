"""The SLURM commands the executor uses: sbatch, squeue, scancel."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from tools.stage.errors import InputError

COMMAND_TIMEOUT_S = 60
# squeue lists a job in these states while it may still run (finished jobs it drops or lists
# only with -t all).
ACTIVE_STATES = {"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED", "REQUEUED", "RESIZING",
                 "SIGNALING", "STAGE_OUT", "STOPPED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD"}


class SlurmError(InputError):
    """A SLURM command failed (no SLURM here, a refused submission); one line naming it."""


def _run(args: Sequence[str]) -> str:
    if shutil.which(args[0]) is None:
        raise SlurmError(f"--executor slurm: {args[0]} not found (is SLURM installed and on PATH?)")
    try:
        result = subprocess.run(list(args), stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                timeout=COMMAND_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise SlurmError(f"`{' '.join(args[:2])} ...` did not answer in {COMMAND_TIMEOUT_S} s") from None
    if result.returncode != 0:
        last = (result.stderr.strip() or result.stdout.strip() or "no output").splitlines()[-1]
        raise SlurmError(f"`{' '.join(args[:2])} ...` failed: {last}")
    return result.stdout


def sbatch(script: Path, options: Sequence[str]) -> int:
    """Submit; returns the job id."""
    return int(_run(["sbatch", "--parsable", *options, str(script)]).strip().split(";")[0])


@dataclass(frozen=True)
class TaskState:
    job_id: int
    task: int | None  # array task id, None for a job that is not an array
    state: str


def active_tasks(job_ids: Sequence[int]) -> list[TaskState]:
    """The tasks of these jobs that are queued or running (one line per array task). The user's
    whole queue is listed and filtered: ``squeue -j`` refuses ids SLURM has already forgotten."""
    if not job_ids:
        return []
    wanted = set(job_ids)
    found = []
    for line in _run(["squeue", "-h", "-r", "--me", "-o", "%i %T"]).splitlines():
        ident, _, state = line.strip().partition(" ")
        job, _, task = ident.partition("_")
        if state in ACTIVE_STATES and job.isdigit() and int(job) in wanted:
            found.append(TaskState(int(job), int(task) if task.isdigit() else None, state))
    return found


def scancel(job_ids: Sequence[int]) -> None:
    if job_ids:
        _run(["scancel", *map(str, job_ids)])
