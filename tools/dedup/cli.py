"""``qwen-data dedup``: exact (normalized 128-bit hash) or MinHash/LSH fuzzy deduplication."""

from __future__ import annotations

import argparse
import sys

from tools.dedup.exact import ExactDedup, Normalization
from tools.dedup.keep import KEEP_POLICIES, KeepPolicy
from tools.dedup.minhash import VERIFICATIONS, MinHashDedup, MinHashSettings
from tools.executor.options import run_job
from tools.stage.cli import add_stage_arguments, run_reporting_errors, stage_config, stage_executor
from tools.stage.settings import SettingError
from tools.stage.stages import corpus_stage_job

FLAGS = {"word_ngram": "--ngram", "char_ngram": "--cjk-ngram"}  # settings whose flag is not their name


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_stage_arguments(parser)
    parser.add_argument("--method", choices=("exact", "minhash"), required=True,
                        help="exact: documents equal after normalization (NFKC, case, whitespace); minhash: "
                             "near duplicates by estimated Jaccard similarity of word n-grams (MinHash/LSH)")
    parser.add_argument("--keep", choices=KEEP_POLICIES, default="first-seen",
                        help="which copy survives: first-seen (order of --input, then file, then line) or "
                             "source-priority (see --source-priority); default first-seen")
    parser.add_argument("--source-priority", nargs="+", default=[], metavar="GLOB",
                        help="with --keep source-priority: file globs, earlier ones win")
    exact = parser.add_argument_group("--method exact (NFKC, case folding and whitespace always)")
    exact.add_argument("--fold-punctuation", action="store_true", help="treat punctuation as whitespace")
    exact.add_argument("--fold-digits", action="store_true", help="treat every digit as 0")
    fuzzy = parser.add_argument_group("--method minhash")
    defaults = MinHashSettings()
    fuzzy.add_argument("--threshold", type=float, default=defaults.threshold,
                       help=f"Jaccard similarity at which documents are duplicates (default {defaults.threshold})")
    fuzzy.add_argument("--target-recall", type=float, default=defaults.target_recall,
                       help="candidate probability wanted at --threshold; picks bands x rows "
                            f"(default {defaults.target_recall})")
    fuzzy.add_argument("--verification", choices=VERIFICATIONS, default=defaults.verification,
                       help="how a candidate pair is checked: exact (Jaccard of the two shingle sets; default) or "
                            "signature (the MinHash estimate: no shingle sets stored, but its error of about "
                            "0.035 at 128 permutations turns true duplicates away near the threshold)")
    fuzzy.add_argument("--num-perm", type=int, default=defaults.num_perm, help=f"default {defaults.num_perm}")
    fuzzy.add_argument("--seed", type=int, default=defaults.seed, help=f"default {defaults.seed}")
    fuzzy.add_argument("--ngram", type=int, default=defaults.word_ngram, help="word n-gram shingles (default 5)")
    fuzzy.add_argument("--cjk-ngram", type=int, default=defaults.char_ngram,
                       help="character n-gram shingles for CJK text (default 5)")
    fuzzy.add_argument("--max-cluster", type=int, default=defaults.max_cluster,
                       help=f"report clusters larger than this (default {defaults.max_cluster})")


def _stage(args: argparse.Namespace) -> ExactDedup | MinHashDedup:
    keep = KeepPolicy(args.keep, tuple(args.source_priority))
    if args.method == "exact":
        return ExactDedup(Normalization(args.fold_punctuation, args.fold_digits), keep)
    try:
        settings = MinHashSettings(threshold=args.threshold, target_recall=args.target_recall, num_perm=args.num_perm,
                                   seed=args.seed, word_ngram=args.ngram, char_ngram=args.cjk_ngram,
                                   verification=args.verification, max_cluster=args.max_cluster)
    except SettingError as error:
        raise error.for_flag(FLAGS) from None
    return MinHashDedup(settings, keep)


def _run(args: argparse.Namespace) -> None:
    stage = _stage(args)
    if isinstance(stage, MinHashDedup):
        print(stage.banding.curve(), file=sys.stderr)
    executor = stage_executor(args)
    run_job(corpus_stage_job(stage, stage_config(args), executor.partitions()), executor)


def run(args: argparse.Namespace) -> int:
    return run_reporting_errors("qwen-data dedup", lambda: _run(args))
