"""Command-line pieces every ``qwen-data`` stage shares, so each stage's cli.py stays small."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Callable

from foundation.records.split import DEFAULT_SPLIT_BYTES
from tools.executor.options import ExecutorConfig, add_executor_arguments, executor_config
from tools.stage.errors import InputError, StopSignal
from tools.stage.runner import StageConfig
from tools.stage.signals import stop_on_signals

STAGE_OUTPUTS = "kept/, removed/, rejected/, manifest.json"


def add_stage_arguments(parser: argparse.ArgumentParser, outputs: str = STAGE_OUTPUTS) -> None:
    """--input, --output, --text-field, --id-field, --workers, --split-bytes, --no-progress, and
    the executor's options; ``outputs`` lists what the stage writes into --output, for the help."""
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
    group.add_argument("--split-bytes", type=int, default=DEFAULT_SPLIT_BYTES, metavar="BYTES",
                       help="uncompressed JSON Lines files larger than this are split into several shards at "
                            f"line ends, so one huge file spreads over workers and tasks (default {DEFAULT_SPLIT_BYTES}"
                            ", 1 GiB; 0: never)")
    group.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_executor_arguments(parser)


def stage_config(args: argparse.Namespace) -> StageConfig:
    if args.workers < 1:
        raise InputError(f"--workers must be >= 1, got {args.workers}")
    if args.split_bytes < 0:
        raise InputError(f"--split-bytes must be >= 0, got {args.split_bytes}")
    return StageConfig(inputs=tuple(args.input), output=args.output, text_field=args.text_field,
                       id_field=args.id_field, workers=args.workers, progress=not args.no_progress,
                       split_bytes=args.split_bytes)


def stage_executor(args: argparse.Namespace) -> ExecutorConfig:
    return executor_config(args, args.workers, not args.no_progress)


def interrupted_message(stop: StopSignal) -> str:
    finished, total = getattr(stop, "finished", None), getattr(stop, "total", None)
    unit = getattr(stop, "unit", "shard")
    done = f"{finished} of {total} {unit}s finished" if total is not None else "finished shards are kept"
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
