"""What the rule blocks (Gopher, C4, FineWeb) share: the language a document was identified in
(written by the language block), and the removal named by the first rule that fails."""

from __future__ import annotations

from typing import Iterable, Iterator

from foundation.records.document import Document, Removal
from tools.blocks.base import OneAtATime
from tools.clean.language import CJK_LANGUAGES
from tools.stage.settings import allowed, check_settings

COUNT = allowed(low=0)
SHARE = allowed(low=0, high=1)

# (rule, measured value, limit, passed), in the order the rules are checked
Measurement = tuple[str, float, float, bool]


def rule(help_text: str, limits: dict) -> dict:
    """Field metadata of a rule's threshold: the help of its CLI flag and its allowed values."""
    return {"help": help_text, **limits}


def document_language(doc: Document, language_field: str) -> str | None:
    """The language the language block wrote (None when no language block ran before)."""
    language = doc.fields.get(language_field)
    return language if isinstance(language, str) else None


def is_cjk(language: str | None) -> bool:
    """Chinese, Japanese and Korean have no spaces between words: word rules do not apply."""
    return language in CJK_LANGUAGES


def first_failure(measurements: Iterable[Measurement], language: str | None) -> Removal | None:
    """The removal named by the first rule that fails (measurements are lazy: later, costlier
    rules are not measured for a document an earlier rule drops)."""
    for name, value, limit, passed in measurements:
        if not passed:
            details = {"value": round(float(value), 4), "limit": limit}
            return Removal(name, details if language is None else {**details, "language": language})
    return None


def nonblank_lines(text: str) -> list[str]:
    return [line.strip() for line in text.split("\n") if line.strip()]


class RuleBlock(OneAtATime):
    """A rule family (a frozen dataclass of thresholds with a ``language_field``): its measurements,
    in order, for a document's text and language; the first that fails names the removal."""

    language_field: str

    def __post_init__(self) -> None:
        check_settings(self)

    def decide(self, doc: Document) -> Removal | None:
        language = document_language(doc, self.language_field)
        return first_failure(self.measurements(doc.text, language), language)

    def measurements(self, text: str, language: str | None) -> Iterator[Measurement]:
        raise NotImplementedError
