"""Rule-based quality filters in the style of Gopher (Rae et al. 2021), C4 and FineWeb.

Each rule has a configurable threshold (a field of ``QualityThresholds``, exposed as a CLI flag);
the first rule that fails names the removal, with the measured value and the limit. Word-based
rules do not apply to Chinese, Japanese or Korean text (no spaces between words); such documents
are checked by character count and the line/repetition rules.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Iterator

from tools.stage import Removal
from tools.stage.settings import allowed, check_settings

STOP_WORDS = frozenset({"the", "be", "to", "of", "and", "that", "have", "with"})  # Gopher's list
BULLETS = ("•", "-", "*", "·", "‣", "▪", "●", "–")
TERMINAL_PUNCTUATION = (".", "!", "?", '"', "'", "。", "！", "？", "”", "…", ":", ";")

COUNT = allowed(low=0)
SHARE = allowed(low=0, high=1)


def _help(text: str, limits: dict) -> dict:
    return {"help": text, **limits}


@dataclass(frozen=True)
class QualityThresholds:
    min_words: int = field(default=50, metadata=_help("Gopher: fewer words than this", COUNT))
    max_words: int = field(default=100_000, metadata=_help("Gopher: more words than this", COUNT))
    min_chars: int = field(default=100, metadata=_help("CJK documents: fewer characters than this", COUNT))
    min_mean_word_length: float = field(default=3.0, metadata=_help("Gopher: mean word length below this", COUNT))
    max_mean_word_length: float = field(default=10.0, metadata=_help("Gopher: mean word length above this", COUNT))
    max_symbol_ratio: float = field(default=0.1, metadata=_help("Gopher: ('#' + '...') per word above this", COUNT))
    max_bullet_lines: float = field(default=0.9, metadata=_help("Gopher: share of lines starting with a bullet", SHARE))
    max_ellipsis_lines: float = field(default=0.3, metadata=_help("Gopher: share of lines ending with '...'", SHARE))
    min_alpha_words: float = field(default=0.8, metadata=_help("Gopher: share of words with a letter", SHARE))
    min_stop_words: int = field(default=2, metadata=_help("Gopher: English stop words present (English only)", COUNT))
    min_terminal_lines: float = field(default=0.12,
                                      metadata=_help("FineWeb: share of lines ending in terminal punctuation", SHARE))
    max_short_lines: float = field(default=0.67, metadata=_help("FineWeb: share of lines of <= 30 characters", SHARE))
    max_duplicate_lines: float = field(default=0.3, metadata=_help("Gopher: share of lines that repeat", SHARE))
    max_duplicate_line_chars: float = field(default=0.2, metadata=_help("Gopher: share of characters in repeated lines", SHARE))
    max_top_2gram_chars: float = field(default=0.2, metadata=_help("Gopher: characters in the most frequent 2-gram", SHARE))
    max_top_4gram_chars: float = field(default=0.16, metadata=_help("Gopher: characters in the most frequent 4-gram", SHARE))
    max_duplicate_5gram_chars: float = field(default=0.15,
                                             metadata=_help("Gopher: characters in repeated 5-grams", SHARE))
    max_duplicate_10gram_chars: float = field(default=0.10,
                                              metadata=_help("Gopher: characters in repeated 10-grams", SHARE))
    lorem_ipsum: bool = field(default=True, metadata=_help("C4: remove documents containing 'lorem ipsum'", {}))

    def __post_init__(self) -> None:
        check_settings(self)


def _top_ngram_char_share(words: list[str], n: int, total_chars: int) -> float:
    if len(words) < n:
        return 0.0
    ngram, count = Counter(zip(*(words[i:] for i in range(n)))).most_common(1)[0]
    return count * sum(len(w) for w in ngram) / total_chars if count > 1 else 0.0


def _duplicate_ngram_char_share(words: list[str], n: int, total_chars: int) -> float:
    ngrams = list(zip(*(words[i:] for i in range(n))))
    counts = Counter(ngrams)
    covered = [False] * len(words)
    for start, ngram in enumerate(ngrams):
        if counts[ngram] > 1:
            covered[start:start + n] = [True] * n
    return sum(len(w) for w, c in zip(words, covered) if c) / total_chars if total_chars else 0.0


def _measurements(text: str, cjk: bool, english: bool, t: QualityThresholds) -> Iterator[tuple[str, float, float, bool]]:
    """(rule, value, limit, passed) in order; lazy, so the costly repetition rules run last and
    only for documents that passed the cheap ones."""
    words = text.split()
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    if cjk:
        yield "min_chars", len(text), t.min_chars, len(text) >= t.min_chars
    else:
        yield "min_words", len(words), t.min_words, len(words) >= t.min_words
        yield "max_words", len(words), t.max_words, len(words) <= t.max_words
        mean = sum(map(len, words)) / max(len(words), 1)
        yield "min_mean_word_length", mean, t.min_mean_word_length, mean >= t.min_mean_word_length
        yield "max_mean_word_length", mean, t.max_mean_word_length, mean <= t.max_mean_word_length
        symbols = (text.count("#") + text.count("...") + text.count("…")) / max(len(words), 1)
        yield "max_symbol_ratio", symbols, t.max_symbol_ratio, symbols <= t.max_symbol_ratio
        alpha = sum(any(c.isalpha() for c in w) for w in words) / max(len(words), 1)
        yield "min_alpha_words", alpha, t.min_alpha_words, alpha >= t.min_alpha_words
        if english:
            stops = len(STOP_WORDS.intersection(w.lower() for w in words))
            yield "min_stop_words", stops, t.min_stop_words, stops >= t.min_stop_words
    if t.lorem_ipsum and "lorem ipsum" in text.lower():
        yield "lorem_ipsum", 1, 0, False
    n_lines = max(len(lines), 1)
    bullets = sum(line.startswith(BULLETS) for line in lines) / n_lines
    yield "max_bullet_lines", bullets, t.max_bullet_lines, bullets <= t.max_bullet_lines
    ellipsis = sum(line.endswith(("...", "…")) for line in lines) / n_lines
    yield "max_ellipsis_lines", ellipsis, t.max_ellipsis_lines, ellipsis <= t.max_ellipsis_lines
    terminal = sum(line.endswith(TERMINAL_PUNCTUATION) for line in lines) / n_lines
    yield "min_terminal_lines", terminal, t.min_terminal_lines, terminal >= t.min_terminal_lines
    short = sum(len(line) <= 30 for line in lines) / n_lines
    yield "max_short_lines", short, t.max_short_lines, short <= t.max_short_lines
    line_counts = Counter(lines)
    repeated = sum(c for c in line_counts.values() if c > 1) / n_lines
    yield "max_duplicate_lines", repeated, t.max_duplicate_lines, repeated <= t.max_duplicate_lines
    line_chars = sum(len(line) * c for line, c in line_counts.items() if c > 1) / max(sum(map(len, lines)), 1)
    yield "max_duplicate_line_chars", line_chars, t.max_duplicate_line_chars, line_chars <= t.max_duplicate_line_chars
    if not cjk:
        lowered = [w.lower() for w in words]
        chars = max(sum(map(len, lowered)), 1)
        for n, limit, rule in ((2, t.max_top_2gram_chars, "max_top_2gram_chars"),
                               (4, t.max_top_4gram_chars, "max_top_4gram_chars")):
            share = _top_ngram_char_share(lowered, n, chars)
            yield rule, share, limit, share <= limit
        for n, limit, rule in ((5, t.max_duplicate_5gram_chars, "max_duplicate_5gram_chars"),
                               (10, t.max_duplicate_10gram_chars, "max_duplicate_10gram_chars")):
            share = _duplicate_ngram_char_share(lowered, n, chars)
            yield rule, share, limit, share <= limit


def first_failed_rule(text: str, thresholds: QualityThresholds, cjk: bool, english: bool) -> Removal | None:
    for rule, value, limit, passed in _measurements(text, cjk, english, thresholds):
        if not passed:
            return Removal(rule, {"value": round(float(value), 4), "limit": limit})
    return None
