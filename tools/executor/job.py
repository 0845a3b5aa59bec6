"""What an executor runs: a job is a list of steps; a step is a list of independent items.

Items of one step never talk to each other; they read what earlier steps wrote to the output
directory and write their own files there. So a step can be spread over any number of processes
or machines, and the steps run one after the other. Every item is idempotent: it records a
completion marker (``markers``) with the key its result depends on, and is skipped when run again
with the same key.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Protocol


class Work(Protocol):
    """One step's work. Picklable (a frozen dataclass): SLURM tasks load it from a file, local
    workers receive it through fork."""

    unit: str  # what an item is, for messages: "shard", "partition"

    def items(self) -> list[str]:
        """The item names (also the marker file names); evaluated where the step runs, so it may
        read what earlier steps wrote (the stage's plan)."""

    def key(self, item: str) -> dict[str, Any]:
        """What the item's result depends on; a marker with the same key means it is done."""

    def run(self, item: str) -> dict[str, Any]:
        """Do the item's work; return a small JSON-serializable result."""


class OneItem:
    """Base of a step's work that is one item named after its ``unit``, done once it has run
    (subclasses whose result depends on more override ``key``)."""

    unit: ClassVar[str]

    def items(self) -> list[str]:
        return [self.unit]

    def key(self, item: str) -> dict[str, Any]:
        return {}


@dataclass(frozen=True)
class Step:
    name: str  # unique within the job, file-name safe: "dedup-minhash.buckets"
    description: str  # progress bars and scripts: "dedup-minhash buckets"
    work: Work
    markers: Path  # the directory of its completion markers
    single: bool = False  # one item, run in the submitting process locally, one task on SLURM


@dataclass(frozen=True)
class Job:
    """``prologue`` runs where the job is started, before anything is submitted (start-up checks
    and planning, so a bad input is one line on the terminal, not in a task's log); ``steps`` run
    on the executor in order; ``report()`` gives the text printed when a followed job ends (the
    local executor's steps print it themselves)."""

    name: str  # "qwen-data dedup": messages and job names
    output: Path  # the output directory; SLURM scripts and state go to OUTPUT/slurm/
    prologue: tuple[Step, ...]
    steps: tuple[Step, ...]
    report: Callable[[], str] | None = None
