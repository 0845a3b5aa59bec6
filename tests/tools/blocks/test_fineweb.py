"""The FineWeb block: too few lines ending in terminal punctuation (min_terminal_lines) or too
many short lines (max_short_lines) drop a document, with the share measured and the limit."""

from __future__ import annotations

from tests.tools.blocks.helpers import CHINESE, ENGLISH, document
from tools.blocks.fineweb import FineWeb

LINES = ENGLISH.split(". ")


def test_prose_in_any_script_is_kept():
    assert FineWeb().decide(document(ENGLISH)) is None
    assert FineWeb().decide(document(CHINESE, language="zh")) is None


def test_lines_without_terminal_punctuation_are_dropped():
    text = "\n".join(line.rstrip(".") + " and so on" for line in LINES)
    removal = FineWeb().decide(document(text, language="en"))
    assert (removal.reason, removal.details) == ("min_terminal_lines", {"value": 0.0, "limit": 0.12, "language": "en"})


def test_a_page_of_short_lines_is_dropped():
    text = "\n".join(f"Item number {n}." for n in range(10))
    removal = FineWeb().decide(document(text))
    assert (removal.reason, removal.details) == ("max_short_lines", {"value": 1.0, "limit": 0.67})
    assert FineWeb(max_short_lines=1.0).decide(document(text)) is None
