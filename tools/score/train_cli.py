"""``qwen-data train-classifier``: a fastText quality classifier, reference text against web text
(DCLM's recipe), measured on a seeded held-out split.

Example:
  qwen-data train-classifier --positive wiki.jsonl books.jsonl --negative crawl.jsonl --output quality.bin

Writes MODEL, MODEL.metrics.json (precision, recall, F1 on the held-out split) and
MODEL.held_out.jsonl (the held-out documents with their labels); prints the figures.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from foundation.records.reader import RecordParser
from tools.score.training import TrainingSettings, figures_text, read_examples, train_classifier
from tools.stage.cli import run_reporting_errors
from tools.stage.settings import SettingError

FLAGS = {"held_out": "--held-out", "word_ngrams": "--word-ngrams", "min_count": "--min-count"}
HELP = {"held_out": "share of each class held out to measure the model", "seed": "seed of the split and the training",
        "epoch": "passes over the training split", "lr": "learning rate", "word_ngrams": "word n-grams as features",
        "dim": "size of the word vectors", "min_count": "words seen fewer times are ignored",
        "buckets": "hash buckets of the n-gram features (the model holds (words + buckets) x dim floats)"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--positive", nargs="+", required=True, metavar="FILE",
                        help="reference text (JSON Lines or Parquet, as the stages read): the label to keep")
    parser.add_argument("--negative", nargs="+", required=True, metavar="FILE", help="random web text")
    parser.add_argument("--output", required=True, type=Path, metavar="MODEL", help="the fastText model file")
    parser.add_argument("--text-field", default="text", help="field holding the document text (default: text)")
    parser.add_argument("--id-field", default="id", help="field holding the document id (default: id)")
    defaults = TrainingSettings()
    for item in dataclasses.fields(TrainingSettings):
        flag = FLAGS.get(item.name, "--" + item.name.replace("_", "-"))
        parser.add_argument(flag, dest=item.name, type=type(getattr(defaults, item.name)),
                            default=getattr(defaults, item.name),
                            help=f"{HELP[item.name]} (default {getattr(defaults, item.name)})")


def _train(args: argparse.Namespace) -> None:
    try:
        settings = TrainingSettings(**{item.name: getattr(args, item.name)
                                       for item in dataclasses.fields(TrainingSettings)})
    except SettingError as error:
        raise error.for_flag(FLAGS) from None
    parser = RecordParser(args.text_field, args.id_field)
    positive = read_examples(args.positive, True, parser)
    negative = read_examples(args.negative, False, parser)
    print(figures_text(train_classifier(positive, negative, args.output, settings)), flush=True)


def run(args: argparse.Namespace) -> int:
    return run_reporting_errors("qwen-data train-classifier", lambda: _train(args))
