"""Block ``perplexity``: per-token perplexity under a language model (``language_model``), CCNet's
head/middle/tail buckets per language, and a filter by threshold or by percentile.

CCNet (Wenzek et al. 2019) scores each document with a language model and cuts each language at
its own perplexity quantiles: head (the most fluent, below the 30th percentile), middle, tail
(above the 60th). Over a corpus (``qwen-data score``) the quantiles are this corpus's own, and a
kept document gets ``perplexity_bucket``. ``max_perplexity`` removes above a fixed value,
``keep_percentile`` above that percentile of the document's language.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from foundation.records.document import Document, Removal
from tools.score.block import Figures, Measurement, decide_scored, limit_removal
from tools.score.language_model import LanguageModelSpec, document_perplexity

BUCKET_FIELD = "perplexity_bucket"


@dataclass(frozen=True)
class PerplexityFilter:
    model: LanguageModelSpec
    max_perplexity: float | None = None  # remove above this value
    keep_percentile: float | None = None  # over a corpus: remove above this percentile of the language
    head_percentile: float = 30.0  # CCNet's bucket edges
    tail_percentile: float = 60.0
    batch_documents: int = 64  # documents tokenized and packed together
    language_field: str = "language"
    name: str = "perplexity"
    libraries: tuple[str, ...] = ("megatron-core", "torch")
    reusable: bool = True

    def __post_init__(self) -> None:
        if self.max_perplexity is not None and self.max_perplexity <= 0:
            raise ValueError(f"maximum perplexity must be > 0, got {self.max_perplexity}")
        if self.keep_percentile is not None and not 0 < self.keep_percentile <= 100:
            raise ValueError(f"perplexity percentile must be in (0, 100], got {self.keep_percentile}")
        if not 0 < self.head_percentile < self.tail_percentile < 100:
            raise ValueError(f"bucket percentiles must satisfy 0 < head < tail < 100, got "
                             f"{self.head_percentile}, {self.tail_percentile}")

    def params(self) -> dict[str, Any]:
        spec = self.model
        return {"checkpoint": spec.checkpoint, "tokenizer_file": spec.tokenizer.tokenizer_file,
                "tokenizer_json": spec.tokenizer.tokenizer_json, "max_tokens": spec.max_tokens,
                "precision": spec.precision, "max_perplexity": self.max_perplexity,
                "keep_percentile": self.keep_percentile, "head_percentile": self.head_percentile,
                "tail_percentile": self.tail_percentile}

    def measure_batch(self, docs: Sequence[Document]) -> list[Measurement]:
        scorer = document_perplexity(self.model)
        measured = []
        for start in range(0, len(docs), self.batch_documents):
            chunk = docs[start:start + self.batch_documents]
            measured += [Measurement(value, {"tokens": tokens}) for value, tokens in scorer([d.text for d in chunk])]
        return measured

    def fixed_figures(self, language: str) -> Figures:
        if self.keep_percentile is not None:
            raise ValueError("a perplexity percentile is taken over a corpus: use qwen-data score")
        return {} if self.max_perplexity is None else {"limit": self.max_perplexity}

    def corpus_figures(self, values: dict[str, list[float]]) -> dict[str, Figures]:
        figures = {}
        for language, scores in values.items():
            measured = np.asarray([v for v in scores if v is not None], dtype=float)
            if not len(measured):
                continue
            head, tail = np.percentile(measured, [self.head_percentile, self.tail_percentile])
            limits = [v for v in (self.max_perplexity,) if v is not None]
            if self.keep_percentile is not None:
                limits.append(float(np.percentile(measured, self.keep_percentile)))
            figures[language] = {"head": float(head), "tail": float(tail),
                                 **({"limit": min(limits)} if limits else {})}
        return figures

    def judge(self, doc: Document, measurement: Measurement, figures: Figures) -> Removal | None:
        if measurement.value is None:
            return Removal("perplexity_empty", {"tokens": 0})
        limit = figures.get("limit")
        if limit is not None and measurement.value > limit:
            return limit_removal("perplexity", measurement, round(limit, 4))
        if "head" in figures:
            doc.fields[BUCKET_FIELD] = ("head" if measurement.value <= figures["head"]
                                        else "middle" if measurement.value <= figures["tail"] else "tail")
        return None

    def decide_batch(self, docs: Sequence[Document]) -> list[Removal | None]:
        return decide_scored(self, docs, self.language_field)

    def decide(self, doc: Document) -> Removal | None:
        return self.decide_batch([doc])[0]
