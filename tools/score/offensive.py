"""Offensive and inappropriate content: shipped word lists (English, Chinese; ``wordlists/README.md``
gives their source and licence) matched on normalized text, with a density limit per language.

English terms match whole words of the NFKC, case-folded text with punctuation as spaces; the
density is the share of words inside a match. Chinese has no spaces between words, so its terms
match as substrings of the text with whitespace removed; the density is the share of characters
inside a match. A document is removed when the density exceeds its language's limit, with the
category that matched most (profanity, sexual, sexual_violence, slur) and the density.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from tools.score.block import (UNKNOWN_LANGUAGE, Figures, Measurement, decide_scored, document_language,
                               limit_removal)
from foundation.records.document import Document, Removal

WORD_LISTS = Path(__file__).parent / "wordlists"
SHIPPED_LISTS = (("en", str(WORD_LISTS / "en.tsv")), ("zh", str(WORD_LISTS / "zh.tsv")))
CHARACTER_LANGUAGES = ("zh", "ja")  # no spaces between words: match and count by characters
_NON_WORD = re.compile(r"[\W_]+")
_SPACE = re.compile(r"\s+")
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_LETTER = re.compile(r"[^\W\d_]")
CJK_SHARE = 0.3  # a document of unknown language is Chinese when this share of its letters is CJK


def normalize_words(text: str) -> str:
    return _NON_WORD.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def normalize_characters(text: str) -> str:
    return _SPACE.sub("", unicodedata.normalize("NFKC", text).casefold())


@dataclass(frozen=True)
class WordList:
    language: str
    categories: dict[str, str]  # normalized term -> category
    pattern: re.Pattern[str]

    @property
    def by_characters(self) -> bool:
        return self.language in CHARACTER_LANGUAGES

    def measure(self, text: str) -> Measurement:
        normalized = normalize_characters(text) if self.by_characters else normalize_words(text)
        matches = [match.group(0) for match in self.pattern.finditer(normalized)]
        if self.by_characters:
            covered, total = sum(map(len, matches)), len(normalized)
        else:
            covered, total = sum(len(m.split()) for m in matches), len(normalized.split())
        categories = Counter(self.categories[m] for m in matches)
        top = min(categories, key=lambda c: (-categories[c], c)) if categories else None
        return Measurement(round(covered / total, 6) if total else 0.0,
                           {"category": top, "matches": len(matches), "language": self.language})


@functools.lru_cache(maxsize=8)
def load_word_list(path: str, language: str) -> WordList:
    """``category<TAB>term`` lines (``#`` comments); ``ValueError`` naming the line when malformed."""
    categories: dict[str, str] = {}
    normalize = normalize_characters if language in CHARACTER_LANGUAGES else normalize_words
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) != 2 or not parts[0].strip() or not normalize(parts[1]):
            raise ValueError(f"{path}:{number}: expected 'category<TAB>term', got {line!r}")
        categories[normalize(parts[1])] = parts[0].strip()
    if not categories:
        raise ValueError(f"{path}: no terms")
    # Longest first, so "piece of shit" wins over "shit" at the same place.
    alternatives = "|".join(re.escape(term) for term in sorted(categories, key=len, reverse=True))
    pattern = f"(?:{alternatives})" if language in CHARACTER_LANGUAGES else rf"\b(?:{alternatives})\b"
    return WordList(language, categories, re.compile(pattern))


def guess_language(text: str) -> str:
    letters = len(_LETTER.findall(text))
    return "zh" if letters and len(_CJK.findall(text)) / letters >= CJK_SHARE else "en"


@dataclass(frozen=True)
class OffensiveContent:
    """Block ``offensive``: density of listed terms per language; remove above ``max_density``."""

    max_density: tuple[tuple[str, float], ...] = (("en", 0.01), ("zh", 0.01))
    word_lists: tuple[tuple[str, str], ...] = SHIPPED_LISTS  # (language, file); later ones replace earlier
    language_field: str = "language"  # written by clean; unknown languages are guessed from the script
    name: str = "offensive"
    libraries: tuple[str, ...] = ()
    reusable: bool = False  # a removal names the matched category: measured again (it is cheap)

    def __post_init__(self) -> None:
        for language, limit in self.max_density:
            if not 0 <= limit <= 1:
                raise ValueError(f"offensive density limit for {language} must be in [0, 1], got {limit}")

    def params(self) -> dict[str, Any]:
        return {"max_density": dict(self.max_density), "word_lists": dict(self.word_lists),
                "language_field": self.language_field}

    def lists(self) -> dict[str, WordList]:
        return {language: load_word_list(path, language) for language, path in dict(self.word_lists).items()}

    def measure(self, doc: Document) -> Measurement:
        language = document_language(doc, self.language_field)
        lists = self.lists()
        if language == UNKNOWN_LANGUAGE:
            language = guess_language(doc.text)
        if language not in lists:
            return Measurement(0.0, {"category": None, "matches": 0, "language": language})
        return lists[language].measure(doc.text)

    def measure_batch(self, docs: Sequence[Document]) -> list[Measurement]:
        return [self.measure(doc) for doc in docs]

    def fixed_figures(self, language: str) -> Figures:
        return {}  # the limit follows the language the measurement used (see judge)

    def corpus_figures(self, values: dict[str, list[float]]) -> dict[str, Figures]:
        return {}

    def judge(self, doc: Document, measurement: Measurement, figures: Figures) -> Removal | None:
        limit = dict(self.max_density).get(measurement.details["language"])
        if limit is None or measurement.value <= limit:
            return None
        return limit_removal("offensive", measurement, limit)

    def decide_batch(self, docs: Sequence[Document]) -> list[Removal | None]:
        return decide_scored(self, docs, self.language_field)

    def decide(self, doc: Document) -> Removal | None:
        return self.decide_batch([doc])[0]
