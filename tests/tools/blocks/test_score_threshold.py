"""The score_threshold block filters on a score an earlier run wrote into ``"scores"``, without
scoring again: below min or above max drops with the score, value and limit; a document without
the score is dropped as score_missing."""

from __future__ import annotations

import pytest

from tests.tools.blocks.helpers import document
from tools.blocks.score_threshold import ScoreThreshold
from tools.stage.errors import InputError


def verdict(block: ScoreThreshold, scores: dict | None):
    removal = block.decide(document("text") if scores is None else document("text", scores=scores))
    return None if removal is None else (removal.reason, removal.details)


def test_scores_within_the_bounds_are_kept():
    assert verdict(ScoreThreshold("quality", min=0.5), {"quality": 0.5}) is None
    assert verdict(ScoreThreshold("perplexity", max=100), {"perplexity": 99.5, "quality": 0.1}) is None


def test_scores_outside_the_bounds_drop_with_the_value_and_the_limit():
    assert verdict(ScoreThreshold("quality", min=0.5, max=0.9), {"quality": 0.2}) == \
        ("score_below_min", {"score": "quality", "value": 0.2, "limit": 0.5})
    assert verdict(ScoreThreshold("quality", min=0.5, max=0.9), {"quality": 0.95}) == \
        ("score_above_max", {"score": "quality", "value": 0.95, "limit": 0.9})


def test_a_document_without_the_score_is_dropped_as_missing():
    assert verdict(ScoreThreshold("quality", min=0.5), None) == ("score_missing", {"score": "quality"})
    assert verdict(ScoreThreshold("quality", min=0.5), {"perplexity": 3.0}) == ("score_missing", {"score": "quality"})


@pytest.mark.parametrize("settings,message", [
    ({"min": 0.5}, "score must name a score"),
    ({"score": "q"}, "needs min, max or both"),
    ({"score": "q", "min": 2, "max": 1}, "min 2 is above max 1"),
    ({"score": "q", "min": "high"}, "min must be a number, got 'high'"),
])
def test_bad_settings_are_refused_with_a_message(settings, message):
    with pytest.raises(InputError, match=message):
        ScoreThreshold(**settings)
