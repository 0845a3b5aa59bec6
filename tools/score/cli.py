"""``qwen-data score``: model-based scores in each kept document's metadata, and filters on them.

Examples:
  qwen-data score --input clean/kept --output scored --perplexity runs/qwen-small/checkpoints \\
      --perplexity-percentile 60
  qwen-data score --input clean/kept --output scored --classifier quality.bin --top-fraction 0.1 --offensive

Scorers (any together; the first to remove a document names the reason):
  --perplexity CHECKPOINT  per-token perplexity under a checkpoint of this project (qwen-train's, or a
                           published Qwen imported with qwen-convert from-hf); CCNet's head/middle/tail
                           bucket per language from this corpus's quantiles (kept documents get
                           "perplexity_bucket").
  --classifier MODEL       the probability of a fastText classifier from qwen-data train-classifier.
  --offensive              density of the shipped English and Chinese offensive word lists.
Kept documents get "scores": {"perplexity": ..., "quality": ..., "offensive": ...}.
"""

from __future__ import annotations

import argparse
import os

from foundation.tokenizer import ENDOFTEXT
from tools.executor.options import run_job
from tools.score.classifier import ClassifierError, QualityClassifier, load_classifier
from tools.score.language_model import LanguageModelSpec, check_language_model
from tools.score.offensive import OffensiveContent, SHIPPED_LISTS
from tools.score.perplexity import PerplexityFilter
from tools.score.stage import ScoreStage, score_job
from tools.stage.cli import add_stage_arguments, run_reporting_errors, stage_config, stage_executor
from tools.stage.errors import InputError
from tools.tokenize.shard import TokenizerSpec

OUTPUTS = "kept/ (with scores), removed/, rejected/, manifest.json (with the corpus figures)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_stage_arguments(parser, OUTPUTS)
    parser.add_argument("--reuse-scores", action="store_true",
                        help="documents that carry a perplexity or quality score from an earlier score run keep it "
                             "(re-threshold without scoring again); offensive-word densities are always measured")
    parser.add_argument("--language-field", default="language",
                        help="field holding the document language (clean writes it); figures are per language")
    perplexity = parser.add_argument_group("--perplexity CHECKPOINT: language-model perplexity")
    perplexity.add_argument("--perplexity", metavar="CHECKPOINT",
                            help="a run's checkpoint directory (its latest) or one step_XXXXXXXX directory")
    perplexity.add_argument("--max-perplexity", type=float, help="remove documents above this perplexity")
    perplexity.add_argument("--perplexity-percentile", type=float, metavar="P",
                            help="remove documents above the P-th percentile of their language's perplexity")
    perplexity.add_argument("--head-percentile", type=float, default=30.0, help="CCNet head bucket edge (default 30)")
    perplexity.add_argument("--tail-percentile", type=float, default=60.0, help="CCNet tail bucket edge (default 60)")
    perplexity.add_argument("--tokenizer-file", help="qwen.tiktoken the checkpoint was trained with "
                                                     "(default: the copy shipped by the dashscope package)")
    perplexity.add_argument("--tokenizer-json", help="or the Hugging Face tokenizer.json it was trained with")
    perplexity.add_argument("--eod-token", default=ENDOFTEXT, help=f"with --tokenizer-json (default {ENDOFTEXT})")
    perplexity.add_argument("--max-tokens", type=int, default=LanguageModelSpec.max_tokens,
                            help=f"tokens scored per document, from its start (default {LanguageModelSpec.max_tokens})")
    perplexity.add_argument("--batch-tokens", type=int, default=LanguageModelSpec.batch_tokens,
                            help=f"padded tokens per forward (default {LanguageModelSpec.batch_tokens})")
    perplexity.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                            help="auto (default): the GPU when present (then use --workers 1), else the CPU")
    perplexity.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32", help="model precision (default fp32)")
    classifier = parser.add_argument_group("--classifier MODEL: quality classifier")
    classifier.add_argument("--classifier", metavar="MODEL", help="a model from qwen-data train-classifier")
    classifier.add_argument("--min-quality", type=float, default=0.0,
                            help="remove documents whose probability is lower (default 0: keep all)")
    classifier.add_argument("--top-fraction", type=float,
                            help="keep only this fraction of the corpus with the highest probability")
    offensive = parser.add_argument_group("--offensive: offensive-content word lists")
    offensive.add_argument("--offensive", action="store_true",
                           help="score the density of offensive terms (shipped lists: " +
                                ", ".join(language for language, _ in SHIPPED_LISTS) + ")")
    offensive.add_argument("--offensive-max-density", nargs="+", default=[], metavar="LANG=DENSITY",
                           help="the density limit per language (default en=0.01 zh=0.01)")
    offensive.add_argument("--offensive-words", nargs="+", default=[], metavar="LANG=FILE",
                           help="a word list (category<TAB>term lines) for a language, replacing the shipped one")


def _pairs(flag: str, values: list[str], convert) -> tuple[tuple[str, object], ...]:
    pairs = []
    for value in values:
        language, _, setting = value.partition("=")
        try:
            pairs.append((language, convert(setting)))
        except ValueError:
            raise InputError(f"{flag}: expected LANG=VALUE, got {value!r}") from None
        if not language:
            raise InputError(f"{flag}: expected LANG=VALUE, got {value!r}")
    return tuple(pairs)


def _perplexity(args: argparse.Namespace) -> PerplexityFilter:
    threads = 0 if args.device == "cuda" else max(1, (os.cpu_count() or 1) // args.workers)
    spec = LanguageModelSpec(args.perplexity, TokenizerSpec(args.tokenizer_file, args.tokenizer_json, args.eod_token),
                             args.device, args.dtype, args.batch_tokens, args.max_tokens, threads)
    if spec.max_tokens < 1 or spec.batch_tokens < 1:
        raise InputError("--max-tokens and --batch-tokens must be >= 1")
    check_language_model(spec)
    return PerplexityFilter(spec, args.max_perplexity, args.perplexity_percentile, args.head_percentile,
                            args.tail_percentile, language_field=args.language_field)


def _offensive(args: argparse.Namespace) -> OffensiveContent:
    limits = dict(OffensiveContent.max_density) | dict(_pairs("--offensive-max-density", args.offensive_max_density, float))
    lists = dict(SHIPPED_LISTS) | dict(_pairs("--offensive-words", args.offensive_words, str))
    block = OffensiveContent(tuple(limits.items()), tuple(lists.items()), args.language_field)
    try:
        block.lists()
    except OSError as error:
        raise InputError(f"--offensive-words: {error}") from None
    return block


def score_stage(args: argparse.Namespace) -> ScoreStage:
    """The blocks the flags ask for, each checked here (a missing checkpoint, an unreadable
    classifier, a bad word list is one line before any work)."""
    blocks = []
    try:
        if args.perplexity:
            blocks.append(_perplexity(args))
        if args.classifier:
            load_classifier(args.classifier)
            blocks.append(QualityClassifier(args.classifier, args.min_quality, args.top_fraction))
        if args.offensive:
            blocks.append(_offensive(args))
    except ClassifierError as error:
        raise InputError(f"--classifier {error}") from None
    except ValueError as error:
        raise InputError(str(error)) from None
    if not blocks:
        raise InputError("give at least one scorer: --perplexity CHECKPOINT, --classifier MODEL or --offensive")
    return ScoreStage(tuple(blocks), args.language_field, reuse_scores=args.reuse_scores)


def run(args: argparse.Namespace) -> int:
    return run_reporting_errors("qwen-data score", lambda: run_job(score_job(score_stage(args), stage_config(args)),
                                                                   stage_executor(args)))
