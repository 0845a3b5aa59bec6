"""The language block: identifies the language offline (py3langid), drops documents outside the
allowed list (reason language) or below the minimum probability (reason language_score), and
writes the language and its probability into kept documents."""

from __future__ import annotations

import pytest

from tests.tools.blocks.helpers import CHINESE, ENGLISH, document
from tools.blocks.language import Language
from tools.stage.errors import InputError

GERMAN = "Der schnelle braune Fuchs springt über den faulen Hund und läuft dann in den Wald zurück. " * 4


def test_kept_documents_carry_the_language_and_its_probability():
    doc = document(ENGLISH, url="u")
    assert Language().decide(doc) is None
    assert doc.fields == {"url": "u", "language": "en", "language_score": 1.0}


def test_languages_outside_the_list_are_dropped_naming_the_language_found():
    assert Language(languages=("en", "zh")).decide(document(CHINESE)) is None
    removal = Language(languages=("en", "zh")).decide(document(GERMAN))
    assert removal.reason == "language"
    assert removal.details == {"language": "de", "score": removal.details["score"], "allowed": ["en", "zh"]}


def test_a_probability_below_the_minimum_is_dropped_with_the_value_and_the_limit():
    removal = Language(min_language_score=0.9).decide(document("Hello world"))
    assert removal.reason == "language_score"
    assert removal.details == {"language": "en", "score": 0.7281, "limit": 0.9}


def test_the_field_name_is_a_setting():
    doc = document(ENGLISH)
    Language(language_field="lang").decide(doc)
    assert doc.fields == {"lang": "en", "lang_score": 1.0}


def test_languages_must_be_a_list_of_codes():
    with pytest.raises(InputError, match="languages must be a list of ISO 639-1 codes"):
        Language(languages="en")
