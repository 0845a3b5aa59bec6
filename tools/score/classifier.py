"""The quality classifier: a fastText model the user trains (``qwen-data train-classifier``), whose
probability of the positive label is the document's ``quality`` score.

fastText is ``fasttext-wheel`` from PyPI: nothing is downloaded. Its Python ``predict`` breaks under
numpy 2 (``np.array(..., copy=False)``), so predictions go through the model's C++ binding
(``model.f.predict``), which returns plain (probability, label) pairs.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from foundation.records.document import Document, Removal
from tools.score.block import ALL_LANGUAGES, Figures, Measurement, decide_scored, limit_removal

POSITIVE_LABEL = "__label__hq"  # DCLM's names: reference ("high quality") text ...
NEGATIVE_LABEL = "__label__cc"  # ... against random web (Common Crawl) text
_WHITESPACE = re.compile(r"\s+")
_PUNCTUATION = re.compile(r"([^\w\s])")


class ClassifierError(ValueError):
    """A classifier file that cannot be used; the message names it."""


def one_line(text: str) -> str:
    """The text as fastText reads it: one line (newlines and runs of whitespace become one space),
    lower case, each punctuation mark a token of its own (the preprocessing of fastText's
    text-classification tutorial), so that word pairs across punctuation are features too."""
    return _WHITESPACE.sub(" ", _PUNCTUATION.sub(r" \1 ", text.lower())).strip()


@functools.lru_cache(maxsize=2)
def load_classifier(path: str):
    """The fastText model at ``path`` (once per process); ``ClassifierError`` when it is missing,
    unreadable or has no positive label."""
    from fasttext.FastText import _FastText  # the class load_model returns, without its stderr notice

    if not Path(path).is_file():
        raise ClassifierError(f"{path}: no such classifier file")
    try:
        model = _FastText(model_path=path)
    except (ValueError, RuntimeError, OSError, MemoryError) as error:
        raise ClassifierError(f"{path}: not a fastText classifier ({error})") from None
    labels = model.get_labels()
    if POSITIVE_LABEL not in labels:
        raise ClassifierError(f"{path}: the classifier has no {POSITIVE_LABEL} label (labels: {labels[:4]})")
    return model


def positive_probability(model, text: str) -> float:
    predictions = model.f.predict(one_line(text) + "\n", len(model.get_labels()), 0.0, "strict")
    return round(min(1.0, dict((label, p) for p, label in predictions).get(POSITIVE_LABEL, 0.0)), 6)


@dataclass(frozen=True)
class QualityClassifier:
    """Block ``quality``: the classifier's probability; keep at least ``min_probability`` or, over
    a corpus (``qwen-data score``), the ``top_fraction`` with the highest probability."""

    model: str
    min_probability: float = 0.0
    top_fraction: float | None = None
    name: str = "quality"
    libraries: tuple[str, ...] = ("fasttext-wheel",)
    reusable: bool = True

    def __post_init__(self) -> None:
        if not 0 <= self.min_probability <= 1:
            raise ValueError(f"minimum quality must be in [0, 1], got {self.min_probability}")
        if self.top_fraction is not None and not 0 < self.top_fraction <= 1:
            raise ValueError(f"top fraction must be in (0, 1], got {self.top_fraction}")

    def params(self) -> dict[str, Any]:
        return {"model": self.model, "min_probability": self.min_probability, "top_fraction": self.top_fraction}

    def measure_batch(self, docs: Sequence[Document]) -> list[Measurement]:
        model = load_classifier(self.model)
        return [Measurement(positive_probability(model, doc.text)) for doc in docs]

    def fixed_figures(self, language: str) -> Figures:
        if self.top_fraction is not None:
            raise ValueError("a top fraction is taken over a corpus: use qwen-data score")
        return {"limit": self.min_probability}

    def corpus_figures(self, values: dict[str, list[float]]) -> dict[str, Figures]:
        if self.top_fraction is None:
            return {ALL_LANGUAGES: {"limit": self.min_probability}}
        every = np.sort(np.concatenate([np.asarray(v, dtype=float) for v in values.values()] or [np.zeros(0)]))
        if not len(every):
            return {}
        keep = max(1, math.ceil(self.top_fraction * len(every)))
        return {ALL_LANGUAGES: {"limit": max(self.min_probability, float(every[len(every) - keep]))}}

    def judge(self, doc: Document, measurement: Measurement, figures: Figures) -> Removal | None:
        limit = figures.get("limit", self.min_probability)
        return None if measurement.value >= limit else limit_removal("quality", measurement, limit)

    def decide_batch(self, docs: Sequence[Document]) -> list[Removal | None]:
        return decide_scored(self, docs, "language")

    def decide(self, doc: Document) -> Removal | None:
        return self.decide_batch([doc])[0]
