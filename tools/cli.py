"""``qwen-data``: composable data-preparation stages (see README, "Data tools")."""

from __future__ import annotations

import sys

from foundation.dispatch import run_subcommand

COMMANDS = {
    "clean": ("tools.clean.cli", "HTML extraction, Unicode normalization, language id, quality filters"),
    "dedup": ("tools.dedup.cli", "exact (--method exact) or MinHash/LSH fuzzy (--method minhash) dedup"),
    "decontaminate": ("tools.decontaminate.cli", "remove 13-gram overlaps with benchmark test sets"),
    "score": ("tools.score.cli", "model-based scores (perplexity, quality classifier, offensive words) and filters"),
    "train-classifier": ("tools.score.train_cli", "train the fastText quality classifier (DCLM recipe, held-out F1)"),
    "tokenize": ("tools.tokenize.cli", "Qwen tokenizer -> megatron indexed dataset (.bin/.idx)"),
    "inspect": ("tools.tokenize.inspect", "print documents, tokens and samples of an indexed dataset"),
    "review": ("tools.review.cli", "an HTML page of sampled kept and removed documents, for manual review"),
    "pipeline": ("tools.pipeline.cli", "run clean -> dedup -> decontaminate -> tokenize from a YAML file"),
}


def main() -> None:
    sys.exit(run_subcommand("qwen-data", __doc__, COMMANDS))
