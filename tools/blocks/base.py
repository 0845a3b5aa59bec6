"""A filter block: one family of rules that decides, for each document, keep, or drop with a reason,
the measured value and the limit (in the manner of datatrove's filters). A stage is an ordered list
of blocks; the first block that drops a document decides its removal.

Blocks are frozen dataclasses of their settings: they are pickled into worker processes and SLURM
tasks. A block that needs a model loads it lazily, once per process, on first use. ``name`` and
``libraries`` are class variables (``ClassVar``), so the dataclass fields are exactly the settings
the pipeline YAML accepts; ``tools.blocks.registry`` maps names to classes, and
``tools.blocks.stage.BlockStage`` runs a list of blocks as a stage.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol, Sequence

from foundation.records.document import Document, Removal

SCORES_FIELD = "scores"


class Block(Protocol):
    name: str  # the block's name in the pipeline YAML and in the manifest
    libraries: tuple[str, ...]  # PyPI names whose versions go to the manifest

    def params(self) -> dict[str, Any]:
        """The settings that decide the outcome (a change reruns the stage)."""

    def decide(self, doc: Document) -> Removal | None:
        """A Removal to drop ``doc`` (details hold at least the measured value and the limit), or
        None to keep it. A block may rewrite ``doc.text`` or add fields (scores: ``record_score``)."""

    def decide_batch(self, docs: Sequence[Document]) -> list[Removal | None]:
        """``decide`` over several documents at once (model scorers batch here)."""


def record_score(doc: Document, name: str, value: float) -> None:
    """Write a score into the kept document's metadata (``"scores": {name: value}``), so a later
    run can re-threshold without re-scoring."""
    doc.fields.setdefault(SCORES_FIELD, {})[name] = value


def decide_each(block: Block, docs: Sequence[Document]) -> list[Removal | None]:
    """The default ``decide_batch``: one document at a time."""
    return [block.decide(doc) for doc in docs]


class OneAtATime:
    """Base of a block that is a frozen dataclass of its settings and decides one document at a
    time: its settings are its params, and ``decide_batch`` is ``decide_each``."""

    def params(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def decide_batch(self, docs: Sequence[Document]) -> list[Removal | None]:
        return decide_each(self, docs)
