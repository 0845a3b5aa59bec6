"""One SLURM array task: ``python -m tools.executor.task OUTPUT/slurm/job.pkl STEP [STEP ...] --tasks N``.

Runs the items ``i, i+N, ...`` of the job's step (``i`` = ``$SLURM_ARRAY_TASK_ID``) that have no
completion marker, on ``$SLURM_CPUS_PER_TASK`` worker processes; several steps (consecutive
one-item steps) one after the other. Exit codes: 0 done, 2 bad input
(one line, also kept in ``OUTPUT/slurm/failed/`` so that a follower reports it instead of
retrying), 130/143 stopped by a signal (scancel, the time limit), 1 anything else (a traceback).
"""

from __future__ import annotations

import argparse
import os
import pickle
import sys
import traceback
from pathlib import Path

from tools.executor.items import run_step, task_items
from tools.executor.state import clear_failure, record_failure
from tools.stage.errors import InputError, StopSignal
from tools.stage.signals import stop_on_signals


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.executor.task", description=__doc__.splitlines()[0])
    parser.add_argument("job_file", type=Path)
    parser.add_argument("steps", type=int, nargs="+")
    parser.add_argument("--tasks", type=int, required=True)
    parser.add_argument("--task", type=int, default=None, help="default: $SLURM_ARRAY_TASK_ID")
    args = parser.parse_args(argv)
    task = args.task if args.task is not None else int(os.environ.get("SLURM_ARRAY_TASK_ID", "0"))
    directory = args.job_file.parent
    name, current = "qwen-data", args.steps[0]
    for index in args.steps:
        clear_failure(directory, index, task)
    try:
        with stop_on_signals():
            with open(args.job_file, "rb") as handle:
                job = pickle.load(handle)
            name = job.name
            for current in args.steps:
                step = job.steps[current]
                items = step.work.items()
                mine = items if step.single else task_items(items, task, args.tasks)
                print(f"{name}: {step.description}, task {task} of {args.tasks}: {len(mine)} of {len(items)} "
                      f"{step.work.unit}s", file=sys.stderr, flush=True)
                run_step(step, int(os.environ.get("SLURM_CPUS_PER_TASK", "1")), progress=False, items=mine)
    except InputError as error:
        print(f"{name}: error: {error}", file=sys.stderr)
        record_failure(directory, current, task, 2, str(error))
        return 2
    except StopSignal as stop:
        print(f"{name}: stopped by {stop}", file=sys.stderr)
        return stop.exit_code
    except Exception:
        traceback.print_exc()
        record_failure(directory, current, task, 1, traceback.format_exc().strip().splitlines()[-1])
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
