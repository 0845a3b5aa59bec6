"""HTML to text (resiliparse) and Unicode normalization."""

from __future__ import annotations

import re
import unicodedata

from resiliparse.extract.html2text import extract_plain_text

HTML_MODES = ("auto", "always", "never")
UNICODE_FORMS = ("NFC", "NFKC")
_LOOKS_LIKE_HTML = re.compile(r"^\s*(<!doctype html|<html|<head|<body)|<(p|div|br|span|a|table|li)[\s>/]",
                              re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_TRAILING_SPACE = re.compile(r"[ \t]+\n")
_BLANK_LINES = re.compile(r"\n{3,}")


def looks_like_html(text: str) -> bool:
    return bool(_LOOKS_LIKE_HTML.search(text[:4096]))


def html_to_text(html: str) -> str:
    """Main content only: navigation, boilerplate, scripts and styles are dropped."""
    return extract_plain_text(html, main_content=True, alt_texts=False, links=False, form_fields=False)


def normalize(text: str, form: str) -> str:
    """Unicode ``form`` (NFC/NFKC), Unix newlines, no control characters, no trailing spaces,
    at most one blank line in a row."""
    text = unicodedata.normalize(form, text.replace("\r\n", "\n").replace("\r", "\n"))
    text = _TRAILING_SPACE.sub("\n", _CONTROL.sub("", text))
    return _BLANK_LINES.sub("\n\n", text).strip()
