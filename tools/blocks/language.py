"""The language block: py3langid identifies the language (offline, its model ships in the wheel);
documents outside the allowed languages or below the minimum probability are removed, kept ones
get ``{language_field: code, language_field + "_score": probability}`` (the rule blocks read it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from foundation.records.document import Document, Removal
from tools.blocks.base import OneAtATime
from tools.clean.language import identify
from tools.stage.errors import InputError
from tools.stage.settings import allowed, check_settings


@dataclass(frozen=True)
class Language(OneAtATime):
    languages: tuple[str, ...] = ()  # keep only these ISO 639-1 codes; empty keeps every language
    # py3langid probability below which a document is removed
    min_language_score: float = field(default=0.0, metadata=allowed(low=0, high=1))
    language_field: str = "language"
    name: ClassVar[str] = "language"
    libraries: ClassVar[tuple[str, ...]] = ("py3langid",)

    def __post_init__(self) -> None:
        check_settings(self)
        if isinstance(self.languages, str) or not all(isinstance(code, str) for code in self.languages):
            raise InputError(f"languages must be a list of ISO 639-1 codes, e.g. [en, zh], got {self.languages!r}")

    def decide(self, doc: Document) -> Removal | None:
        language, score = identify(doc.text)
        if self.languages and language not in self.languages:
            return Removal("language", {"language": language, "score": round(score, 4),
                                        "allowed": list(self.languages)})
        if score < self.min_language_score:
            return Removal("language_score", {"language": language, "score": round(score, 4),
                                              "limit": self.min_language_score})
        doc.fields[self.language_field] = language
        doc.fields[f"{self.language_field}_score"] = round(score, 4)
        return None
