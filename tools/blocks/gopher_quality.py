"""Gopher's quality rules (Rae et al. 2021, "Scaling Language Models", appendix A; datatrove's
``GopherQualityFilter``): document length in words, mean word length, symbols per word, bullet
and ellipsis lines, words with a letter, English stop words. Chinese, Japanese and Korean text
(no spaces between words) is measured by its length in characters instead."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Iterator

from tools.blocks.rules import COUNT, SHARE, Measurement, RuleBlock, is_cjk, nonblank_lines, rule

STOP_WORDS = frozenset({"the", "be", "to", "of", "and", "that", "have", "with"})  # Gopher's list
BULLETS = ("•", "-", "*", "·", "‣", "▪", "●", "–")


@dataclass(frozen=True)
class GopherQuality(RuleBlock):
    min_words: int = field(default=50, metadata=rule("Gopher: fewer words than this", COUNT))
    max_words: int = field(default=100_000, metadata=rule("Gopher: more words than this", COUNT))
    min_chars: int = field(default=100, metadata=rule("CJK documents: fewer characters than this", COUNT))
    min_mean_word_length: float = field(default=3.0, metadata=rule("Gopher: mean word length below this", COUNT))
    max_mean_word_length: float = field(default=10.0, metadata=rule("Gopher: mean word length above this", COUNT))
    max_symbol_ratio: float = field(default=0.1, metadata=rule("Gopher: ('#' + '...') per word above this", COUNT))
    min_alpha_words: float = field(default=0.8, metadata=rule("Gopher: share of words with a letter", SHARE))
    min_stop_words: int = field(default=2, metadata=rule("Gopher: English stop words present (English only)", COUNT))
    max_bullet_lines: float = field(default=0.9, metadata=rule("Gopher: share of lines starting with a bullet", SHARE))
    max_ellipsis_lines: float = field(default=0.3, metadata=rule("Gopher: share of lines ending with '...'", SHARE))
    language_field: str = "language"  # where the language block wrote the document's language
    name: ClassVar[str] = "gopher_quality"
    libraries: ClassVar[tuple[str, ...]] = ()

    def measurements(self, text: str, language: str | None) -> Iterator[Measurement]:
        if is_cjk(language):
            yield "min_chars", len(text), self.min_chars, len(text) >= self.min_chars
        else:
            words = text.split()
            count = max(len(words), 1)
            yield "min_words", len(words), self.min_words, len(words) >= self.min_words
            yield "max_words", len(words), self.max_words, len(words) <= self.max_words
            mean = sum(map(len, words)) / count
            yield "min_mean_word_length", mean, self.min_mean_word_length, mean >= self.min_mean_word_length
            yield "max_mean_word_length", mean, self.max_mean_word_length, mean <= self.max_mean_word_length
            symbols = (text.count("#") + text.count("...") + text.count("…")) / count
            yield "max_symbol_ratio", symbols, self.max_symbol_ratio, symbols <= self.max_symbol_ratio
            alpha = sum(any(c.isalpha() for c in w) for w in words) / count
            yield "min_alpha_words", alpha, self.min_alpha_words, alpha >= self.min_alpha_words
            if language == "en":
                stops = len(STOP_WORDS.intersection(w.lower() for w in words))
                yield "min_stop_words", stops, self.min_stop_words, stops >= self.min_stop_words
        lines = nonblank_lines(text)
        bullets = sum(line.startswith(BULLETS) for line in lines) / max(len(lines), 1)
        yield "max_bullet_lines", bullets, self.max_bullet_lines, bullets <= self.max_bullet_lines
        ellipsis = sum(line.endswith(("...", "…")) for line in lines) / max(len(lines), 1)
        yield "max_ellipsis_lines", ellipsis, self.max_ellipsis_lines, ellipsis <= self.max_ellipsis_lines
