"""C4's page rules (Raffel et al. 2020, section 2.2; datatrove's ``C4QualityFilter``): here the
placeholder-text rule, a page containing "lorem ipsum" is removed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from foundation.records.document import Document, Removal
from tools.blocks.base import OneAtATime
from tools.blocks.rules import document_language, first_failure, rule


@dataclass(frozen=True)
class C4(OneAtATime):
    lorem_ipsum: bool = field(default=True, metadata=rule("C4: remove documents containing 'lorem ipsum'", {}))
    language_field: str = "language"
    name: ClassVar[str] = "c4"
    libraries: ClassVar[tuple[str, ...]] = ()

    def decide(self, doc: Document) -> Removal | None:
        if not self.lorem_ipsum:
            return None
        found = "lorem ipsum" in doc.text.lower()
        return first_failure([("lorem_ipsum", 1, 0, False)] if found else [],
                             document_language(doc, self.language_field))
