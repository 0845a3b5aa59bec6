"""Gopher's repetition rules (Rae et al. 2021, table A1; datatrove's ``GopherRepetitionFilter``):
repeated lines, the most frequent 2- and 4-grams, and characters covered by repeated 5- and
10-grams. The n-gram rules do not apply to Chinese, Japanese or Korean text (no spaces between
words)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import ClassVar, Iterator

from tools.blocks.rules import SHARE, Measurement, RuleBlock, is_cjk, nonblank_lines, rule


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


@dataclass(frozen=True)
class GopherRepetition(RuleBlock):
    max_duplicate_lines: float = field(default=0.3, metadata=rule("Gopher: share of lines that repeat", SHARE))
    max_duplicate_line_chars: float = field(default=0.2,
                                            metadata=rule("Gopher: share of characters in repeated lines", SHARE))
    max_top_2gram_chars: float = field(default=0.2,
                                       metadata=rule("Gopher: characters in the most frequent 2-gram", SHARE))
    max_top_4gram_chars: float = field(default=0.16,
                                       metadata=rule("Gopher: characters in the most frequent 4-gram", SHARE))
    max_duplicate_5gram_chars: float = field(default=0.15,
                                             metadata=rule("Gopher: characters in repeated 5-grams", SHARE))
    max_duplicate_10gram_chars: float = field(default=0.10,
                                              metadata=rule("Gopher: characters in repeated 10-grams", SHARE))
    language_field: str = "language"
    name: ClassVar[str] = "gopher_repetition"
    libraries: ClassVar[tuple[str, ...]] = ()

    def measurements(self, text: str, language: str | None) -> Iterator[Measurement]:
        lines = nonblank_lines(text)
        line_counts = Counter(lines)
        repeated = sum(c for c in line_counts.values() if c > 1) / max(len(lines), 1)
        yield "max_duplicate_lines", repeated, self.max_duplicate_lines, repeated <= self.max_duplicate_lines
        line_chars = sum(len(line) * c for line, c in line_counts.items() if c > 1) / max(sum(map(len, lines)), 1)
        yield ("max_duplicate_line_chars", line_chars, self.max_duplicate_line_chars,
               line_chars <= self.max_duplicate_line_chars)
        if is_cjk(language):
            return
        words = [w.lower() for w in text.split()]
        chars = max(sum(map(len, words)), 1)
        for n, limit, name in ((2, self.max_top_2gram_chars, "max_top_2gram_chars"),
                               (4, self.max_top_4gram_chars, "max_top_4gram_chars")):
            share = _top_ngram_char_share(words, n, chars)
            yield name, share, limit, share <= limit
        for n, limit, name in ((5, self.max_duplicate_5gram_chars, "max_duplicate_5gram_chars"),
                               (10, self.max_duplicate_10gram_chars, "max_duplicate_10gram_chars")):
            share = _duplicate_ngram_char_share(words, n, chars)
            yield name, share, limit, share <= limit
