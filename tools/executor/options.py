"""``--executor local|slurm`` and its options, shared by every ``qwen-data`` stage and the pipeline."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

from tools.executor.job import Job
from tools.executor.local import LocalExecutor
from tools.stage.errors import InputError

EXECUTORS = ("local", "slurm")


@dataclass(frozen=True)
class SlurmOptions:
    """What each step's ``sbatch`` gets, and how ``--wait`` follows the jobs."""

    tasks: int  # array size of a step (steps of one item get one task)
    cpus_per_task: int = 1  # also the worker processes inside each task
    partition: str | None = None
    time: str | None = None
    mem: str | None = None
    sbatch_lines: tuple[str, ...] = ()  # more sbatch options, e.g. "--account=data" or "--qos=low"
    wait: bool = False
    retries: int = 2  # resubmissions of a failed task while following
    poll_seconds: float = 10.0
    python: str = sys.executable  # the interpreter each task runs
    progress: bool = True


@dataclass(frozen=True)
class ExecutorConfig:
    kind: str = "local"
    tasks: int | None = None  # merge partitions (and SLURM array size); default: the local workers
    workers: int = 1  # local worker processes
    progress: bool = True
    slurm: SlurmOptions | None = None

    def partitions(self) -> int:
        return self.tasks or self.workers


def add_executor_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("executor (where the work runs)")
    group.add_argument("--executor", choices=EXECUTORS, default="local",
                       help="local: this machine's processes (default); slurm: every step as a SLURM job array, "
                            "chained with afterok dependencies (scripts and logs in OUTPUT/slurm/)")
    group.add_argument("--tasks", type=int, default=None, metavar="N",
                       help="tasks per step: the hash partitions of dedup's merge, and with slurm the array size "
                            "(default: --workers locally; required with slurm); a rerun into the same output "
                            "must keep it")
    group.add_argument("--wait", action="store_true",
                       help="slurm: follow the jobs and print progress, resubmit a failed task alone "
                            "(--retries), print the summary at the end; without it the command returns once "
                            "the jobs are submitted")
    group.add_argument("--partition", default=None, help="slurm: sbatch --partition")
    group.add_argument("--time", default=None, help="slurm: sbatch --time per task, e.g. 4:00:00")
    group.add_argument("--cpus-per-task", type=int, default=1,
                       help="slurm: sbatch --cpus-per-task, also the worker processes in each task (default 1)")
    group.add_argument("--mem", default=None, help="slurm: sbatch --mem per task, e.g. 16G")
    group.add_argument("--sbatch", action="append", default=[], metavar="OPTION",
                       help="slurm: another sbatch option for every step, e.g. --sbatch=--account=data; repeatable")
    group.add_argument("--retries", type=int, default=2,
                       help="slurm with --wait: resubmissions of a failed task (default 2)")
    group.add_argument("--poll-interval", type=float, default=10.0, metavar="SECONDS",
                       help="slurm with --wait: seconds between queue checks (default 10)")


def executor_config(args: argparse.Namespace, workers: int, progress: bool) -> ExecutorConfig:
    if args.tasks is not None and args.tasks < 1:
        raise InputError(f"--tasks must be >= 1, got {args.tasks}")
    if args.executor == "local":
        return ExecutorConfig("local", args.tasks, workers, progress)
    if args.tasks is None:
        raise InputError("--executor slurm needs --tasks N (the array size of each step)")
    for flag, value in (("--cpus-per-task", args.cpus_per_task), ("--retries", args.retries + 1),
                        ("--poll-interval", args.poll_interval)):
        if value <= 0:
            raise InputError(f"{flag} must be positive, got {value}")
    slurm = SlurmOptions(args.tasks, args.cpus_per_task, args.partition, args.time, args.mem, tuple(args.sbatch),
                         args.wait, args.retries, args.poll_interval, progress=progress)
    return ExecutorConfig("slurm", args.tasks, args.cpus_per_task, progress, slurm)


def run_job(job: Job, config: ExecutorConfig) -> bool:
    """Run ``job`` where ``config`` says; True when it has finished (locally, or followed on SLURM)."""
    if config.kind == "local":
        LocalExecutor(config.workers, config.progress).run(job)
        return True
    from tools.executor.slurm import SlurmExecutor

    return SlurmExecutor(config.slurm).run(job)
