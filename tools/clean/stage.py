"""The clean stage: HTML extraction -> Unicode normalization -> language id -> quality rules."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from tools.clean.language import CJK_LANGUAGES, identify
from tools.clean.quality import QualityThresholds, first_failed_rule
from tools.clean.text import HTML_MODES, UNICODE_FORMS, html_to_text, looks_like_html, normalize
from tools.stage import Document, Removal
from tools.stage.settings import allowed, check_settings


@dataclass(frozen=True)
class CleanSettings:
    # auto: extract when the text looks like HTML; always; never
    html: str = field(default="auto", metadata=allowed(choices=HTML_MODES))
    unicode_form: str = field(default="NFC", metadata=allowed(choices=UNICODE_FORMS))
    languages: tuple[str, ...] = ()  # keep only these ISO 639-1 codes; empty keeps every language
    # py3langid probability below which a document is removed
    min_language_score: float = field(default=0.0, metadata=allowed(low=0, high=1))
    language_field: str = "language"  # kept documents get {language_field: code, language_field_score: p}
    quality: QualityThresholds = field(default_factory=QualityThresholds)
    quality_filters: bool = True

    def __post_init__(self) -> None:
        check_settings(self)


@dataclass(frozen=True)
class CleanStage:
    settings: CleanSettings = field(default_factory=CleanSettings)
    name: str = "clean"
    libraries: tuple[str, ...] = ("resiliparse", "py3langid")

    def params(self) -> dict[str, Any]:
        return asdict(self.settings)

    def process(self, doc: Document) -> Removal | None:
        s = self.settings
        text = doc.text
        if s.html == "always" or (s.html == "auto" and looks_like_html(text)):
            text = html_to_text(text)
        text = normalize(text, s.unicode_form)
        if not text:
            return Removal("empty", {"chars_before": len(doc.text)})
        language, score = identify(text)
        if s.languages and language not in s.languages:
            return Removal("language", {"language": language, "score": round(score, 4), "allowed": list(s.languages)})
        if score < s.min_language_score:
            return Removal("language_score", {"language": language, "score": round(score, 4),
                                              "limit": s.min_language_score})
        if s.quality_filters:
            removal = first_failed_rule(text, s.quality, cjk=language in CJK_LANGUAGES, english=language == "en")
            if removal is not None:
                return Removal(removal.reason, {**removal.details, "language": language})
        doc.text = text
        doc.fields[s.language_field] = language
        doc.fields[f"{s.language_field}_score"] = round(score, 4)
        return None
