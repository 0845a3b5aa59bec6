"""A stage that is an ordered list of blocks: each batch of documents goes through the blocks in
order, and the first block that drops a document decides its removal; the later blocks see only
the documents still kept (so a costly model scorer runs after the cheap rules)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from foundation.records.document import Document, Removal
from tools.blocks.base import Block
from tools.executor.job import Job
from tools.stage.runner import StageConfig
from tools.stage.stages import document_stage_job


def block_params(block: Block) -> dict[str, Any]:
    return {"block": block.name, **block.params()}


@dataclass(frozen=True)
class BlockStage:
    name: str
    blocks: tuple[Block, ...]

    @property
    def libraries(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(library for block in self.blocks for library in block.libraries))

    def params(self) -> dict[str, Any]:
        return {"blocks": [block_params(block) for block in self.blocks]}

    def decide_batch(self, docs: Sequence[Document]) -> list[Removal | None]:
        decisions: list[Removal | None] = [None] * len(docs)
        undecided = list(range(len(docs)))
        for block in self.blocks:
            if not undecided:
                break
            verdicts = block.decide_batch([docs[i] for i in undecided])
            for i, removal in zip(undecided, verdicts):
                decisions[i] = removal
            undecided = [i for i in undecided if decisions[i] is None]
        return decisions

    def job(self, config: StageConfig, partitions: int) -> Job:
        return document_stage_job(self, config)

    def depends(self) -> str | None:
        return None
