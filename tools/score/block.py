"""What the model scorers share: a block that measures documents (the costly part, batched), records
the score in each document's metadata, and judges the measurement against a limit.

Measuring and judging are apart so that ``qwen-data score`` can measure the whole corpus first and
judge afterwards against limits taken from the corpus itself (a percentile, a top fraction, CCNet's
head/middle/tail buckets). In a plain list of blocks (``decide_batch``) the limits are the block's
own settings (``fixed_figures``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence

from foundation.records.document import Document, Removal
from tools.blocks.base import record_score

ALL_LANGUAGES = "*"  # the key of corpus figures that hold for every language
UNKNOWN_LANGUAGE = "unknown"


@dataclass(frozen=True)
class Measurement:
    """One document's score, and what a removal should say beside it (matched category, tokens)."""

    value: float
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> list[Any]:
        return [self.value, self.details]

    @classmethod
    def from_json(cls, value: list[Any]) -> "Measurement":
        return cls(value[0], value[1])


Figures = dict[str, float]  # a block's limits for one language: {"limit": ..., "head": ..., ...}


class ScoringBlock(Protocol):
    name: str
    libraries: tuple[str, ...]
    # Whether a score recorded by an earlier run (``"scores": {name: value}``) can stand for a new
    # measurement: True when judging needs the value alone (not the details of a measurement).
    reusable: bool

    def params(self) -> dict[str, Any]: ...

    def measure_batch(self, docs: Sequence[Document]) -> list[Measurement]:
        """The score of each document (a model forward, a dictionary lookup)."""

    def fixed_figures(self, language: str) -> Figures:
        """The limits from the settings alone; a ``SettingError``-like ``ValueError`` when the
        settings ask for corpus figures (a percentile needs ``qwen-data score``)."""

    def corpus_figures(self, values: dict[str, list[float]]) -> dict[str, Figures]:
        """Per language (``ALL_LANGUAGES`` for all), the limits from the corpus's own scores."""

    def judge(self, doc: Document, measurement: Measurement, figures: Figures) -> Removal | None:
        """A Removal (details: the value, the limit and the measurement's details) or None; may add
        fields to a kept document (the perplexity bucket)."""


def document_language(doc: Document, language_field: str) -> str:
    """The language ``clean`` wrote into the document, else ``unknown``."""
    language = doc.fields.get(language_field)
    return language if isinstance(language, str) and language else UNKNOWN_LANGUAGE


def figures_for(figures: dict[str, Figures], language: str) -> Figures:
    return figures.get(language) or figures.get(ALL_LANGUAGES) or {}


def decide_scored(block: ScoringBlock, docs: Sequence[Document], language_field: str) -> list[Removal | None]:
    """``decide_batch`` of a scoring block used on its own: measure, record, judge by the settings."""
    decisions = []
    for doc, measurement in zip(docs, block.measure_batch(docs)):
        record_score(doc, block.name, measurement.value)
        decisions.append(block.judge(doc, measurement, block.fixed_figures(document_language(doc, language_field))))
    return decisions


def limit_removal(reason: str, measurement: Measurement, limit: float, **extra: Any) -> Removal:
    return Removal(reason, {"value": measurement.value, "limit": limit, **measurement.details, **extra})
