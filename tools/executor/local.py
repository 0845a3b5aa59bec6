"""The local backend: every step on this machine, items ``workers`` at a time."""

from __future__ import annotations

from dataclasses import dataclass

from tools.executor.items import StepOutcome, run_step
from tools.executor.job import Job


@dataclass(frozen=True)
class LocalExecutor:
    workers: int
    progress: bool = True

    def run(self, job: Job) -> dict[str, StepOutcome]:
        """Run the prologue and every step in order; single steps run in this process (they
        print the stage's summary). Returns each step's outcome by step name."""
        outcomes = {}
        for step in (*job.prologue, *job.steps):
            outcomes[step.name] = run_step(step, 1 if step.single else self.workers, self.progress)
        return outcomes
