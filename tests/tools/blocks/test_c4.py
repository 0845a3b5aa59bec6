"""The C4 block: a page with placeholder text ("lorem ipsum", any case) is dropped."""

from __future__ import annotations

from tests.tools.blocks.helpers import ENGLISH, document
from tools.blocks.c4 import C4


def test_placeholder_text_is_dropped_and_other_text_kept():
    removal = C4().decide(document("Lorem Ipsum dolor sit amet. " + ENGLISH, language="en"))
    assert (removal.reason, removal.details) == ("lorem_ipsum", {"value": 1.0, "limit": 0, "language": "en"})
    assert C4().decide(document(ENGLISH, language="en")) is None


def test_the_rule_can_be_turned_off():
    assert C4(lorem_ipsum=False).decide(document("lorem ipsum " + ENGLISH)) is None
