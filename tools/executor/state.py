"""What the SLURM backend remembers in ``OUTPUT/slurm/``: the task count and every submission
(``state.json``), and the one-line errors of tasks that stopped on bad input (``failed/``)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from foundation.atomic_write import write_json_atomic
from tools.stage.errors import InputError

STATE_FILE = "state.json"
FAILED_DIR = "failed"


def array_spec(tasks: list[int]) -> str:
    """``0-3,7``: sbatch's --array syntax for these task ids."""
    ranges: list[list[int]] = []
    for task in sorted(tasks):
        if ranges and task == ranges[-1][1] + 1:
            ranges[-1][1] = task
        else:
            ranges.append([task, task])
    return ",".join(f"{a}" if a == b else f"{a}-{b}" for a, b in ranges)


@dataclass
class Submission:
    step: int
    job_id: int
    tasks: list[int]
    at: float


@dataclass
class SlurmState:
    directory: Path
    tasks: int | None = None
    submissions: list[Submission] = field(default_factory=list)

    @property
    def path(self) -> Path:
        return self.directory / STATE_FILE

    @classmethod
    def load(cls, directory: Path) -> "SlurmState":
        path = Path(directory) / STATE_FILE
        if not path.exists():
            return cls(Path(directory))
        try:
            value = json.loads(path.read_text(encoding="utf-8"))
            return cls(Path(directory), value["tasks"], [Submission(**s) for s in value["submissions"]])
        except (ValueError, KeyError, TypeError) as error:
            raise InputError(f"{path}: unreadable ({error}); delete it if no job of this output is queued") from None

    def save(self) -> None:
        write_json_atomic(self.path, {"tasks": self.tasks, "submissions": [asdict(s) for s in self.submissions]})

    def check_tasks(self, tasks: int) -> None:
        """The task count splits the merge into partitions and names the tasks' items: an output
        directory keeps the count it was submitted with."""
        if self.tasks is not None and self.tasks != tasks:
            raise InputError(f"--tasks {tasks}: {self.path} records a run submitted with --tasks {self.tasks}; "
                             f"use --tasks {self.tasks}, or a fresh --output")
        if self.tasks is None:
            self.tasks = tasks
            self.save()

    def record(self, step: int, job_id: int, tasks: list[int], at: float) -> None:
        self.submissions.append(Submission(step, job_id, tasks, at))
        self.save()

    def job_ids(self) -> list[int]:
        return [s.job_id for s in self.submissions]

    def latest(self, step: int) -> Submission | None:
        return next((s for s in reversed(self.submissions) if s.step == step), None)


def failure_path(directory: Path, step: int, task: int) -> Path:
    return Path(directory) / FAILED_DIR / f"{step + 1:02d}-{task}.json"


def record_failure(directory: Path, step: int, task: int, exit_code: int, error: str) -> None:
    write_json_atomic(failure_path(directory, step, task), {"exit_code": exit_code, "error": error})


def read_failure(directory: Path, step: int, task: int) -> dict[str, Any] | None:
    try:
        return json.loads(failure_path(directory, step, task).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def clear_failure(directory: Path, step: int, task: int) -> None:
    failure_path(directory, step, task).unlink(missing_ok=True)
