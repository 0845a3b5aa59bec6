"""The Gopher quality block: each rule drops a document with the rule's name, the measured value
and the limit (and the language, when the language block ran); the first failing rule names it.
Chinese, Japanese and Korean documents are measured in characters, not words."""

from __future__ import annotations

import pytest

from tests.tools.blocks.helpers import CHINESE, ENGLISH, document
from tools.blocks.gopher_quality import GopherQuality
from tools.stage.errors import InputError

LINES = ENGLISH.split(". ")
WORDS = len(ENGLISH.split())
STOP_WORDS = ("the", "be", "to", "of", "and", "that", "have", "with")


def verdict(text: str, block: GopherQuality = GopherQuality(), language: str | None = "en"):
    removal = block.decide(document(text) if language is None else document(text, language=language))
    return None if removal is None else (removal.reason, removal.details)


def test_ordinary_prose_is_kept():
    assert verdict(ENGLISH) is None


@pytest.mark.parametrize("text,reason,value,limit", [
    ("Too short to be a document, and that is all.", "min_words", 10.0, 50),
    (" ".join(["incomprehensibilities"] * 60), "max_mean_word_length", 21.0, 10.0),
    (" ".join(["a b c de"] * 30), "min_mean_word_length", 1.25, 3.0),
    (ENGLISH + " #tag" * 40, "max_symbol_ratio", round(40 / (WORDS + 40), 4), 0.1),
    (ENGLISH + " 1234 5678" * 30, "min_alpha_words", round(WORDS / (WORDS + 60), 4), 0.8),
    (" ".join(w for w in ENGLISH.split() if w.lower() not in STOP_WORDS), "min_stop_words", 0.0, 2),
    ("\n".join("- " + line for line in LINES * 4), "max_bullet_lines", 1.0, 0.9),
    ("\n".join(line + "..." for line in LINES * 4), "max_ellipsis_lines", 1.0, 0.3),
])
def test_each_rule_drops_with_its_name_value_and_limit(text, reason, value, limit):
    assert verdict(text) == (reason, {"value": value, "limit": limit, "language": "en"})


def test_the_first_failing_rule_names_the_removal():
    short_and_bulleted = "\n".join(["- a list item"] * 3)
    assert verdict(short_and_bulleted)[0] == "min_words"


def test_thresholds_are_settings():
    assert verdict("Too short to be a document, and that is all.", GopherQuality(min_words=5)) is None
    with pytest.raises(InputError, match="max_bullet_lines must be in \\[0, 1\\], got 2"):
        GopherQuality(max_bullet_lines=2)


def test_chinese_is_measured_in_characters_not_words():
    assert verdict(CHINESE, language="zh") is None
    assert verdict("北京是一座城市。", language="zh") == ("min_chars", {"value": 8.0, "limit": 100, "language": "zh"})


def test_stop_words_count_for_english_only_and_without_a_language_no_language_is_named():
    no_stop_words = " ".join(w for w in ENGLISH.split() if w.lower() not in ("the", "and", "of", "to", "that"))
    assert verdict(no_stop_words, language="fr") is None
    assert verdict("Too short to be a document.", language=None) == ("min_words", {"value": 6.0, "limit": 50})
