"""Filtering on a score an earlier run wrote (``"scores": {name: value}`` in kept documents), so
a corpus can be re-thresholded without running the model again."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from foundation.records.document import Document, Removal
from tools.blocks.base import OneAtATime, SCORES_FIELD
from tools.stage.errors import InputError


@dataclass(frozen=True)
class ScoreThreshold(OneAtATime):
    score: str = ""  # the name under "scores", e.g. perplexity
    min: float | None = None  # documents scoring lower are removed (reason score_below_min)
    max: float | None = None  # documents scoring higher are removed (reason score_above_max)
    name: ClassVar[str] = "score_threshold"
    libraries: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        if not self.score:
            raise InputError("score must name a score (the key under \"scores\"), e.g. perplexity")
        for bound in ("min", "max"):
            value = getattr(self, bound)
            if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool)):
                raise InputError(f"{bound} must be a number, got {value!r}")
        if self.min is None and self.max is None:
            raise InputError(f"score_threshold on {self.score!r} needs min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise InputError(f"score_threshold on {self.score!r}: min {self.min} is above max {self.max}")

    def decide(self, doc: Document) -> Removal | None:
        value = (doc.fields.get(SCORES_FIELD) or {}).get(self.score)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or math.isnan(value):
            return Removal("score_missing", {"score": self.score})
        if self.min is not None and value < self.min:
            return Removal("score_below_min", {"score": self.score, "value": value, "limit": self.min})
        if self.max is not None and value > self.max:
            return Removal("score_above_max", {"score": self.score, "value": value, "limit": self.max})
        return None
