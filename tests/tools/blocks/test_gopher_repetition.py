"""The Gopher repetition block: repeated lines, dominant 2- and 4-grams and text covered by
repeated 5- and 10-grams drop a document, with the share measured and the limit. The n-gram
rules skip Chinese, Japanese and Korean (no spaces between words)."""

from __future__ import annotations

import pytest

from tests.tools.blocks.helpers import CHINESE, ENGLISH, document
from tools.blocks.gopher_repetition import GopherRepetition

LINES = ENGLISH.split(". ")
LONGEST = max(LINES, key=len)
OTHERS = ["Another line.", "And one more.", "A third line here.", "Then a fourth."]


def verdict(text: str, language: str = "en", block: GopherRepetition = GopherRepetition()):
    removal = block.decide(document(text, language=language))
    return None if removal is None else (removal.reason, removal.details)


def test_prose_is_kept():
    assert verdict(ENGLISH) is None


def test_repeated_lines_drop_with_their_share():
    lines = [LINES[0]] * 3 + LINES  # 4 lines are one line
    share = round(4 / len(lines), 4)
    assert verdict("\n".join(lines)) == ("max_duplicate_lines", {"value": share, "limit": 0.3, "language": "en"})


def test_few_repeated_lines_drop_when_they_hold_much_of_the_text():
    lines = [*LINES, *OTHERS, LONGEST]  # 2 of 10 lines repeat, but they are the longest
    share = round(2 * len(LONGEST) / sum(map(len, lines)), 4)
    assert share > 0.2
    assert verdict("\n".join(lines)) == ("max_duplicate_line_chars", {"value": share, "limit": 0.2, "language": "en"})


@pytest.mark.parametrize("text,reason,limit", [
    ("quick fox " * 40 + ENGLISH, "max_top_2gram_chars", 0.2),
    ("one two three four " * 12 + ENGLISH, "max_top_4gram_chars", 0.16),
    (ENGLISH + " " + ENGLISH[:150], "max_duplicate_5gram_chars", 0.15),
])
def test_each_ngram_rule_drops_with_its_name_and_a_value_above_the_limit(text, reason, limit):
    found, details = verdict(text)
    assert found == reason and details["limit"] == limit and details["value"] > limit


def test_repeated_10grams_are_measured_when_the_5gram_limit_allows_them():
    text = ENGLISH + " " + ENGLISH[:150]
    found, details = verdict(text, block=GopherRepetition(max_duplicate_5gram_chars=1.0))
    assert found == "max_duplicate_10gram_chars" and details["value"] > details["limit"] == 0.1


def test_chinese_is_judged_by_repeated_lines_only():
    one_line = CHINESE.replace("\n", "") * 3  # its n-grams repeat, but there are no words
    assert verdict(one_line, language="zh") is None
    assert verdict("\n".join([CHINESE] * 3), language="zh")[0] == "max_duplicate_lines"
