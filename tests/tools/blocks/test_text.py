"""The text block: HTML pages are reduced to their main text, every text is Unicode-normalized,
and a document with nothing left is dropped (reason empty, with its length before)."""

from __future__ import annotations

import pytest

from tests.tools.blocks.helpers import ENGLISH, document
from tools.blocks.text import Text
from tools.stage.errors import InputError

PAGE = ("<html><head><script>var tracking = 1;</script></head><body><nav>Home | About</nav>"
        f"<article><p>{ENGLISH}</p></article><footer>Copyright</footer></body></html>")


def test_an_html_page_keeps_its_main_text_only():
    doc = document(PAGE)
    assert Text().decide(doc) is None
    assert doc.text.startswith("The river runs past the old mill")
    assert "tracking" not in doc.text and "Home | About" not in doc.text and "<p>" not in doc.text


def test_html_never_leaves_markup_as_text_and_always_extracts_plain_text_too():
    never = document(PAGE)
    assert Text(html="never").decide(never) is None and "<article>" in never.text
    always = document("plain words " + ENGLISH)
    assert Text(html="always").decide(always) is None and always.text.startswith("plain words")


def test_text_is_normalized_in_the_chosen_form():
    nfc, nfkc = document("cafe\u0301\x07  \r\nnext\n\n\n\nend"), document("\uff21\uff22")
    assert Text().decide(nfc) is None and nfc.text == "caf\u00e9\nnext\n\nend"
    assert Text(unicode_form="NFKC").decide(nfkc) is None and nfkc.text == "AB"


def test_a_document_left_empty_is_dropped_with_its_length_before():
    removal = Text().decide(document("<html><body><script>x = 1;</script></body></html>"))
    assert (removal.reason, removal.details) == ("empty", {"chars_before": 49})
    assert Text().decide(document(" \n\t ")).details == {"chars_before": 4}


def test_settings_outside_their_choices_are_refused():
    with pytest.raises(InputError, match="html must be one of auto, always, never"):
        Text(html="sometimes")
