"""The tiny language model the perplexity tests share (trained once per session)."""

from __future__ import annotations

import pytest

from tests.tools.score.corpora import train_grammar_model


@pytest.fixture(scope="session")
def grammar_model(tmp_path_factory):
    """(checkpoint directory, tokenizer.json) of a 30-step qwen-tiny run on grammar sentences."""
    return train_grammar_model(tmp_path_factory.mktemp("grammar_model"), steps=30)
