"""The text-rewriting block: the main text of HTML pages (resiliparse), then Unicode
normalization; a document with no text left is removed (reason ``empty``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from foundation.records.document import Document, Removal
from tools.blocks.base import OneAtATime
from tools.clean.text import HTML_MODES, UNICODE_FORMS, html_to_text, looks_like_html, normalize
from tools.stage.settings import allowed, check_settings


@dataclass(frozen=True)
class Text(OneAtATime):
    # auto: extract when the text looks like HTML; always; never
    html: str = field(default="auto", metadata=allowed(choices=HTML_MODES))
    unicode_form: str = field(default="NFC", metadata=allowed(choices=UNICODE_FORMS))
    name: ClassVar[str] = "text"
    libraries: ClassVar[tuple[str, ...]] = ("resiliparse",)

    def __post_init__(self) -> None:
        check_settings(self)

    def decide(self, doc: Document) -> Removal | None:
        text = doc.text
        if self.html == "always" or (self.html == "auto" and looks_like_html(text)):
            text = html_to_text(text)
        text = normalize(text, self.unicode_form)
        if not text:
            return Removal("empty", {"chars_before": len(doc.text)})
        doc.text = text
        return None
