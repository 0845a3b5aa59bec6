"""Command-line pieces every ``qwen-data`` stage shares, so each stage's cli.py stays small."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Callable

from tools.stage.errors import InputError, StopSignal
from tools.stage.runner import StageConfig
from tools.stage.signals import stop_on_signals
from tools.stage.stages import ShardSelection

STAGE_OUTPUTS = "kept/, removed/, rejected/, manifest.json"


def add_stage_arguments(parser: argparse.ArgumentParser, outputs: str = STAGE_OUTPUTS) -> None:
    """--input, --output, --text-field, --id-field, --workers, --no-progress; ``outputs`` lists
    what the stage writes into --output, for the help."""
    group = parser.add_argument_group("input and output (common to all stages)")
    group.add_argument("--input", nargs="+", required=True, metavar="PATH",
                       help="JSON Lines (.jsonl, .ndjson, .json; plain, .gz, .zst, .bz2 or .xz) or Parquet "
                            "files, directories (searched recursively; other files are skipped with a warning) "
                            "or globs; each file is one shard")
    group.add_argument("--output", required=True, type=Path,
                       help=f"output directory: {outputs}; rerunning resumes, redoing only shards whose input "
                            "changed")
    group.add_argument("--text-field", default="text", help="field holding the document text (default: text)")
    group.add_argument("--id-field", default="id",
                       help="field holding the document id (default: id); when absent the id is FILE:LINE")
    group.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                       help="worker processes (default: all cores)")
    group.add_argument("--no-progress", action="store_true", help="no progress bars")


def stage_config(args: argparse.Namespace) -> StageConfig:
    if args.workers < 1:
        raise InputError(f"--workers must be >= 1, got {args.workers}")
    return StageConfig(inputs=tuple(args.input), output=args.output, text_field=args.text_field,
                       id_field=args.id_field, workers=args.workers, progress=not args.no_progress)


def add_sharding_arguments(parser: argparse.ArgumentParser) -> None:
    """--phase, --shard-index, --num-shards: split a whole-corpus stage across machines."""
    group = parser.add_argument_group("several machines")
    group.add_argument("--phase", choices=("all", "index", "merge"), default="all",
                       help="all: index then merge on this machine; index: only this task's shards "
                            "(--shard-index/--num-shards or a SLURM array task), then stop; merge: decide and "
                            "write once every shard is indexed (default: all)")
    group.add_argument("--shard-index", type=int, default=None,
                       help="this task's index for --phase index (default: $SLURM_ARRAY_TASK_ID)")
    group.add_argument("--num-shards", type=int, default=None,
                       help="number of index tasks (default: $SLURM_ARRAY_TASK_COUNT)")


def shard_selection(args: argparse.Namespace) -> ShardSelection | None:
    """The selection for ``--phase index``; None means every shard."""
    if args.phase != "index":
        return None
    index = args.shard_index if args.shard_index is not None else os.environ.get("SLURM_ARRAY_TASK_ID")
    count = args.num_shards if args.num_shards is not None else os.environ.get("SLURM_ARRAY_TASK_COUNT")
    if index is None and count is None:
        return None
    if index is None or count is None:
        raise InputError("--phase index needs both --shard-index and --num-shards (or a SLURM array task)")
    index, count = int(index), int(count)
    if not 0 <= index < count:
        raise InputError(f"--shard-index must be in [0, {count}), got {index}")
    return ShardSelection(index, count)


def interrupted_message(stop: StopSignal) -> str:
    finished, total = getattr(stop, "finished", None), getattr(stop, "total", None)
    done = f"{finished} of {total} shards finished" if total is not None else "finished shards are kept"
    return f"interrupted: {done}; rerun the same command to resume"


def run_reporting_errors(prog: str, body: Callable[[], object]) -> int:
    """Run ``body``; a user error becomes one line on stderr and exit code 2, SIGINT or SIGTERM one
    line and exit code 130 or 143."""
    try:
        with stop_on_signals():
            body()
    except InputError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except StopSignal as stop:
        print(f"{prog}: {interrupted_message(stop)}", file=sys.stderr)
        return stop.exit_code
    return 0
