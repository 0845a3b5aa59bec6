"""Blocks a user could write, loaded by import path in the tests (``tests.tools.blocks.custom:LengthScore``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Sequence

from foundation.records.document import Document, Removal
from tools.blocks.base import OneAtATime, record_score
from tools.stage.errors import InputError


@dataclass(frozen=True)
class LengthScore(OneAtATime):
    """Scores each document by its length in characters (a stand-in for a model) and drops those
    shorter than ``min_chars``."""

    min_chars: int = 0
    name: ClassVar[str] = "length_score"
    libraries: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        if self.min_chars < 0:
            raise InputError(f"min_chars must be >= 0, got {self.min_chars}")

    def decide(self, doc: Document) -> Removal | None:
        record_score(doc, "length", len(doc.text))
        if len(doc.text) < self.min_chars:
            return Removal("too_short", {"value": len(doc.text), "limit": self.min_chars})
        return None


@dataclass(frozen=True)
class BatchRecorder:
    """Drops documents containing ``word``; notes the size of every batch it was asked about (here,
    and in each document's ``batch_size``, which shows in the output of a stage run by workers)."""

    word: str = "drop"
    batches: list = field(default_factory=list, compare=False)
    name: ClassVar[str] = "batch_recorder"
    libraries: ClassVar[tuple[str, ...]] = ()

    def params(self) -> dict:
        return {"word": self.word}

    def decide(self, doc: Document) -> Removal | None:
        return Removal("has_word", {"word": self.word}) if self.word in doc.text.split() else None

    def decide_batch(self, docs: Sequence[Document]) -> list[Removal | None]:
        self.batches.append(len(docs))
        for doc in docs:
            doc.fields["batch_size"] = len(docs)
        return [self.decide(doc) for doc in docs]


class NotABlock:
    """Has none of a block's methods."""
