"""Training the quality classifier, DCLM's recipe: a fastText bigram classifier of reference text
(positive) against random web text (negative), with a seeded held-out split to measure it.

Each class is split on its own (the held-out split has both classes in the training proportion).
The model, its held-out figures (``MODEL.metrics.json``) and the held-out documents
(``MODEL.held_out.jsonl``, so ``qwen-data score`` can reproduce the figures) are written atomically.
"""

from __future__ import annotations

import os
import random
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from foundation.atomic_write import atomic_jsonl_writers, write_json_atomic
from foundation.records.document import Rejection
from foundation.records.reader import RecordParser, read_documents
from tools.score.classifier import NEGATIVE_LABEL, POSITIVE_LABEL, load_classifier, one_line, positive_probability
from tools.stage.errors import InputError
from tools.stage.settings import allowed, check_settings

DECISION_THRESHOLD = 0.5  # a held-out document is predicted positive at this probability or above


@dataclass(frozen=True)
class TrainingSettings:
    held_out: float = field(default=0.1, metadata=allowed(low=0, high=1, low_open=True, high_open=True))
    seed: int = 0
    # fastText's defaults (5 epochs at 0.1) underfit sets of a few thousand documents.
    epoch: int = field(default=10, metadata=allowed(low=1))
    lr: float = field(default=0.5, metadata=allowed(low=0, low_open=True))
    word_ngrams: int = field(default=2, metadata=allowed(low=1))  # DCLM: word bigrams
    dim: int = field(default=100, metadata=allowed(low=1))
    min_count: int = field(default=1, metadata=allowed(low=1))
    # Hash buckets of the word n-grams: the model holds (words + buckets) x dim floats.
    buckets: int = field(default=200_000, metadata=allowed(low=1))

    def __post_init__(self) -> None:
        check_settings(self)


@dataclass(frozen=True)
class Example:
    id: str
    text: str
    positive: bool


def metrics_path(model: Path) -> Path:
    return model.with_name(model.name + ".metrics.json")


def held_out_path(model: Path) -> Path:
    return model.with_name(model.name + ".held_out.jsonl")


def read_examples(paths: list[str], positive: bool, parser: RecordParser) -> list[Example]:
    """Every document of ``paths``; an unreadable record is one error line naming file and line."""
    examples = []
    for path in paths:
        if not Path(path).is_file():
            raise InputError(f"{path}: no such file")
        for item in read_documents(path, parser):
            if isinstance(item, Rejection):
                raise InputError(f"{item.source}:{item.line}: {item.error}")
            examples.append(Example(item.id, item.text, positive))
    return examples


def split(examples: list[Example], fraction: float, rng: random.Random) -> tuple[list[Example], list[Example]]:
    shuffled = list(examples)
    rng.shuffle(shuffled)
    count = round(len(shuffled) * fraction)
    return shuffled[count:], shuffled[:count]


def held_out_figures(model, examples: list[Example]) -> dict[str, Any]:
    counts = {"tp": 0, "fp": 0, "fn": 0, "tn": 0}
    for example in examples:
        predicted = positive_probability(model, example.text) >= DECISION_THRESHOLD
        counts[("t" if predicted == example.positive else "f") + ("p" if predicted else "n")] += 1
    precision = counts["tp"] / max(1, counts["tp"] + counts["fp"])
    recall = counts["tp"] / max(1, counts["tp"] + counts["fn"])
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 6), "recall": round(recall, 6), "f1": round(f1, 6),
            "threshold": DECISION_THRESHOLD, **counts}


def train_classifier(positive: list[Example], negative: list[Example], output: Path,
                     settings: TrainingSettings) -> dict[str, Any]:
    import fasttext

    for label, examples in (("--positive", positive), ("--negative", negative)):
        if len(examples) < 2:
            raise InputError(f"{label}: {len(examples)} documents; at least 2 are needed for a held-out split")
    rng = random.Random(settings.seed)
    train_pos, held_pos = split(positive, settings.held_out, rng)
    train_neg, held_neg = split(negative, settings.held_out, rng)
    training = train_pos + train_neg
    rng.shuffle(training)
    output.parent.mkdir(parents=True, exist_ok=True)
    # Next to the output, so the finished model is renamed into place (atomic on one file system).
    with tempfile.TemporaryDirectory(prefix=".train-classifier-", dir=output.parent) as tmp:
        train_file = Path(tmp) / "train.txt"
        train_file.write_text("".join(f"{POSITIVE_LABEL if e.positive else NEGATIVE_LABEL} {one_line(e.text)}\n"
                                      for e in training), encoding="utf-8")
        # One thread: fastText's Hogwild training is not reproducible across thread counts.
        model = fasttext.train_supervised(input=str(train_file), lr=settings.lr, epoch=settings.epoch,
                                          wordNgrams=settings.word_ngrams, dim=settings.dim,
                                          minCount=settings.min_count, bucket=settings.buckets, thread=1,
                                          seed=settings.seed, verbose=0)
        held_out = held_pos + held_neg
        figures = held_out_figures(model, held_out)
        model.save_model(str(Path(tmp) / "model.bin"))
        os.replace(Path(tmp) / "model.bin", output)
    load_classifier.cache_clear()  # a model of the same path loaded earlier in this process is stale
    report = {"model": str(output), "positive_label": POSITIVE_LABEL, "held_out": figures,
              "documents": {"training": len(training), "held_out": len(held_out),
                            "positive": len(positive), "negative": len(negative)},
              "settings": asdict(settings)}
    write_json_atomic(metrics_path(output), report)
    with atomic_jsonl_writers(held_out_path(output)) as (writer,):
        for example in held_out:
            writer.write({"id": example.id, "text": example.text,
                          "label": "positive" if example.positive else "negative"})
    return report


def figures_text(report: dict[str, Any]) -> str:
    figures, documents = report["held_out"], report["documents"]
    return (f"held-out ({documents['held_out']} of {documents['positive'] + documents['negative']} documents): "
            f"precision {figures['precision']:.4f}  recall {figures['recall']:.4f}  F1 {figures['f1']:.4f}\n"
            f"model: {report['model']}; figures: {metrics_path(Path(report['model']))}")

