"""The clean stage: one list of blocks, text (HTML extraction, Unicode normalization) ->
language -> Gopher quality -> C4 -> FineWeb -> Gopher repetition, configured from the flags of
``qwen-data clean`` (or the ``clean:`` options of the pipeline YAML)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from tools.blocks.base import Block
from tools.blocks.c4 import C4
from tools.blocks.fineweb import FineWeb
from tools.blocks.gopher_quality import GopherQuality
from tools.blocks.gopher_repetition import GopherRepetition
from tools.blocks.language import Language
from tools.blocks.stage import BlockStage
from tools.blocks.text import Text

# In this order: the first rule that fails names the removal
QUALITY_BLOCKS = (GopherQuality, C4, FineWeb, GopherRepetition)


def quality_fields() -> list[dataclasses.Field]:
    """Every rule threshold of the quality blocks (each a flag of ``qwen-data clean``)."""
    return [item for block in QUALITY_BLOCKS for item in dataclasses.fields(block) if item.name != "language_field"]


def quality_options(quality: dict[str, Any]) -> list[tuple[type, dict[str, Any]]]:
    """The thresholds of ``quality`` (rule -> value), each given to the block that owns it; an
    unknown name raises KeyError naming it."""
    owned = {item.name: block for block in QUALITY_BLOCKS for item in dataclasses.fields(block)
             if item.name != "language_field"}
    for name in quality:
        if name not in owned:
            raise KeyError(name)
    return [(block, {k: v for k, v in quality.items() if owned[k] is block}) for block in QUALITY_BLOCKS]


def default_quality(language_field: str = "language") -> tuple[Block, ...]:
    return tuple(block(language_field=language_field) for block in QUALITY_BLOCKS)


@dataclass(frozen=True)
class CleanSettings:
    text: Text = field(default_factory=Text)
    language: Language = field(default_factory=Language)
    # the rule blocks, in order (reading the language from language.language_field); (): no quality filters
    quality: tuple[Block, ...] = field(default_factory=default_quality)


def clean_stage(settings: CleanSettings) -> BlockStage:
    return BlockStage("clean", (settings.text, settings.language, *settings.quality))
