"""Normalized words and their n-gram keys, the unit that decontamination compares.

A word is a maximal run of characters other than whitespace, punctuation, symbols (emoji included)
and control characters, lower-cased: letters, digits, marks and the underscore. Everything else only
separates words, so ``f(a,b)`` and ``f( a , b )`` give the same words, and re-indented or
re-wrapped text gives the same n-grams as the original. Separators are found with one
``str.translate`` (each separator becomes a space, one character for one, so offsets survive) and
``str.split``, several times faster than a regular expression.

Words are mapped to ids of the benchmark vocabulary (0 for a word no benchmark contains), and each
window of ``n`` ids to a 64-bit polynomial key computed with numpy over the whole document at once.
Keys only select candidates; a candidate counts as a match after its ids are compared exactly.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from itertools import repeat

import numpy as np

_WORD = re.compile(r"\S+")
# The Basic Multilingual Plane, then the emoji and symbol blocks of plane 1.
_SEPARATOR_RANGES = (range(0x10000), range(0x1F000, 0x1FB00))
# Odd 64-bit multiplier; arithmetic wraps modulo 2**64 in uint64.
_KEY_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)


@functools.lru_cache(maxsize=1)
def _separator_table() -> dict[int, str]:
    return {code: " " for block in _SEPARATOR_RANGES for code in block
            if unicodedata.category(chr(code))[0] in "PSZC" and code != ord("_")}


def normalized_words(text: str) -> list[str]:
    # lower() comes after translate: it may lengthen a word but never adds whitespace, so the
    # words stay aligned with word_spans().
    return text.translate(_separator_table()).lower().split()


def word_spans(text: str) -> list[tuple[int, int]]:
    """Character span of every word of ``normalized_words(text)``, in the same order."""
    return [match.span() for match in _WORD.finditer(text.translate(_separator_table()))]


def word_ids(words: list[str], vocabulary: dict[str, int]) -> np.ndarray:
    return np.fromiter(map(vocabulary.get, words, repeat(0)), dtype=np.uint64, count=len(words))


def ngram_keys(ids: np.ndarray, n: int) -> np.ndarray:
    """Key of the n-gram starting at each position (``len(ids) - n + 1`` keys)."""
    count = len(ids) - n + 1
    if count <= 0:
        return np.empty(0, dtype=np.uint64)
    keys = np.zeros(count, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for offset in range(n):
            keys = keys * _KEY_MULTIPLIER + ids[offset:offset + count]
    return keys
