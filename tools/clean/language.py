"""Offline language identification with py3langid (its model ships in the wheel)."""

from __future__ import annotations

from functools import lru_cache

LANGID_SAMPLE_CHARS = 3000  # enough for a confident guess; keeps long documents cheap
CJK_LANGUAGES = frozenset({"zh", "ja", "ko"})


@lru_cache(maxsize=1)
def _identifier():
    # Loaded once per worker process, on first use.
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_pickled_model(MODEL_FILE, norm_probs=True)


def identify(text: str) -> tuple[str, float]:
    """(ISO 639-1 code, probability) of the text's language."""
    language, probability = _identifier().classify(text[:LANGID_SAMPLE_CHARS])
    return language, float(probability)
