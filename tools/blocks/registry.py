"""Blocks by name, for the pipeline YAML (``- block: gopher_quality``), or by import path for a
user's own block class (``- block: mypkg.filters:MyBlock``).

A block named here is imported only when a configuration lists it (a model scorer's imports are
heavy). A user's class must be a dataclass of its settings implementing ``tools.blocks.base.Block``.
"""

from __future__ import annotations

import dataclasses
import importlib

from tools.stage.errors import InputError

# name -> "module:Class"
BLOCKS = {
    "text": "tools.blocks.text:Text",
    "language": "tools.blocks.language:Language",
    "gopher_quality": "tools.blocks.gopher_quality:GopherQuality",
    "c4": "tools.blocks.c4:C4",
    "fineweb": "tools.blocks.fineweb:FineWeb",
    "gopher_repetition": "tools.blocks.gopher_repetition:GopherRepetition",
    "score_threshold": "tools.blocks.score_threshold:ScoreThreshold",
    # model scorers (tools/score/); their corpus-wide limits (percentiles, top fractions) need qwen-data score
    "perplexity": "tools.score.perplexity:PerplexityFilter",
    "quality": "tools.score.classifier:QualityClassifier",
    "offensive": "tools.score.offensive:OffensiveContent",
}

BLOCK_ATTRIBUTES = ("name", "libraries", "params", "decide", "decide_batch")


class BlockLookupError(InputError):
    """A block name or import path that names no usable block class."""


def block_class(name: str) -> type:
    """The class of a registered block name, or of ``module:Class``."""
    path = BLOCKS.get(name, name)
    if ":" not in path:
        raise BlockLookupError(f"unknown block {name!r} (known: {', '.join(BLOCKS)}; or module:Class for your own)")
    module_name, _, class_name = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise BlockLookupError(f"block {name!r}: cannot import {module_name} ({error})") from None
    cls = getattr(module, class_name, None)
    if not isinstance(cls, type):
        raise BlockLookupError(f"block {name!r}: {module_name} has no class {class_name}")
    if not dataclasses.is_dataclass(cls) or not all(hasattr(cls, attribute) for attribute in BLOCK_ATTRIBUTES):
        raise BlockLookupError(f"block {name!r}: {path} is not a block: a dataclass of its settings with "
                               f"{', '.join(BLOCK_ATTRIBUTES)} (see tools/blocks/base.py)")
    return cls
