"""``qwen-data pipeline --config FILE``: clean -> exact dedup -> fuzzy dedup -> decontaminate -> [filter ->] tokenize.

The stages' steps run one after the other, each stage reading the previous one's kept/ shards,
on this machine (``--executor local``) or as SLURM job arrays (``--executor slurm``, see
docs/data-tools.md). Everything is checked before the first stage starts. A rerun skips what
finished from the same inputs, and redoes exactly what changed or was interrupted. At the end it
prints (and writes to OUTPUT/pipeline_summary.md and .json) the documents, bytes, removal reasons,
tokens and time of every stage, and the ``data`` section for qwen-train.
"""

from __future__ import annotations

import argparse

from tools.executor.options import add_executor_arguments, executor_config, run_job
from tools.pipeline.config import load_pipeline_config
from tools.pipeline.run import pipeline_job
from tools.stage.cli import run_reporting_errors


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="pipeline YAML (see examples/data/pipeline.yaml)")
    parser.add_argument("--output", default=None, help="output directory (default: the file's output key)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_executor_arguments(parser)


def pipeline(args: argparse.Namespace) -> None:
    config = load_pipeline_config(args.config, args.output, progress=not args.no_progress)
    executor = executor_config(args, config.workers, config.progress)
    run_job(pipeline_job(config, executor), executor)


def run(args: argparse.Namespace) -> int:
    return run_reporting_errors("qwen-data pipeline", lambda: pipeline(args))
