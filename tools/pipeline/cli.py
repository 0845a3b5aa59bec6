"""``qwen-data pipeline --config FILE``: clean -> exact dedup -> fuzzy dedup -> decontaminate -> tokenize.

Stages run in this process, one after the other, each reading the previous one's kept/ shards.
Everything is checked before the first stage starts. A rerun skips the stages that finished from
the same inputs, and redoes exactly what changed or was interrupted. At the end it
prints (and writes to OUTPUT/pipeline_summary.md and .json) the documents, bytes, removal reasons,
tokens and time of every stage, and the ``data`` section for qwen-train.
"""

from __future__ import annotations

import argparse

from tools.pipeline.config import load_pipeline_config
from tools.pipeline.run import run_pipeline
from tools.pipeline.summary import write_summary
from tools.stage.cli import run_reporting_errors


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="pipeline YAML (see examples/data/pipeline.yaml)")
    parser.add_argument("--output", default=None, help="output directory (default: the file's output key)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def pipeline(args: argparse.Namespace) -> None:
    config = load_pipeline_config(args.config, args.output, progress=not args.no_progress)
    records = run_pipeline(config)
    print(write_summary(config, records))


def run(args: argparse.Namespace) -> int:
    return run_reporting_errors("qwen-data pipeline", lambda: pipeline(args))
