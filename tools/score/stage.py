"""``qwen-data score`` as a job of steps (``tools.executor``): plan, measure, figures, write, finish.

1. Measure (per shard): every scoring block measures every document (the model work, batched);
   the scores go to ``.work/measured/<shard>.json``.
2. Figures (one item): from all shards' scores, each block's limits per language: CCNet's
   perplexity buckets and percentile, the classifier's top fraction (``.work/figures.json``). Only
   scores are read here, never the corpus.
3. Write (per shard): each document gets its scores (``"scores": {block: value}``) and is judged
   by the blocks in order against the figures; the first removal decides. Nothing is scored twice.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from foundation.atomic_write import write_json_atomic
from foundation.records.document import Document, Removal
from foundation.records.reader import read_documents
from tools.blocks.base import SCORES_FIELD, record_score
from tools.executor.job import Job, OneItem, Step
from tools.score.block import Measurement, ScoringBlock, document_language, figures_for
from tools.stage.errors import InputError
from tools.stage.filter import Decider
from tools.stage.plan import ShardWork, StageRun
from tools.stage.runner import Shard, StageConfig, digest
from tools.stage.stages import finish_steps, plan_step, stage_report, stage_run

NAME = "score"
MEASURED_DIR = "measured"
FIGURES_FILE = "figures.json"


@dataclass(frozen=True)
class ScoreStage:
    blocks: tuple[ScoringBlock, ...]
    language_field: str = "language"  # the language clean wrote; figures are per language
    batch_documents: int = 256  # documents handed to each block's measure_batch at once
    # Documents that carry a reusable block's score from an earlier run (its kept/) keep it instead
    # of being measured again: re-thresholding a scored corpus costs no model time.
    reuse_scores: bool = False
    name: str = NAME

    @property
    def libraries(self) -> tuple[str, ...]:
        return tuple(sorted({library for block in self.blocks for library in block.libraries}))

    def params(self) -> dict[str, Any]:
        return {"blocks": {block.name: block.params() for block in self.blocks}, "language_field": self.language_field,
                "reuse_scores": self.reuse_scores}

    def recorded(self, block: ScoringBlock, doc: Document) -> Measurement | None:
        """The score an earlier run recorded in ``doc``, when it may stand for a measurement."""
        value = doc.fields.get(SCORES_FIELD, {}).get(block.name) if self.reuse_scores and block.reusable else None
        return Measurement(value, {"recorded": True}) if isinstance(value, (int, float)) else None


def measured_path(run: StageRun, shard: Shard) -> Path:
    return run.work_dir / MEASURED_DIR / f"{shard.name}.json"


@dataclass(frozen=True)
class MeasureWork(ShardWork):
    """One shard's scores: ``{line: {"language": ..., "scores": {block: [value, details]}}}``."""

    stage: ScoreStage | None = None

    def run(self, item: str) -> dict[str, Any]:
        shard, config = self.shard(item), self.stage_run.config
        documents = (doc for doc in read_documents(shard.path, config.parser, shard.byte_range)
                     if isinstance(doc, Document) and doc.duplicate_of is None)
        measured: dict[str, dict[str, Any]] = {}
        batch: list[Document] = []
        for doc in documents:
            batch.append(doc)
            if len(batch) == self.stage.batch_documents:
                measured.update(self._measure(batch))
                batch = []
        measured.update(self._measure(batch))
        write_json_atomic(measured_path(self.stage_run, shard), measured)
        return {"documents": len(measured)}

    def _measure(self, docs: list[Document]) -> dict[str, dict[str, Any]]:
        if not docs:
            return {}
        scores = {block.name: self._block_scores(block, docs) for block in self.stage.blocks}
        return {str(doc.line): {"language": document_language(doc, self.stage.language_field),
                                "scores": {name: measured[i].to_json() for name, measured in scores.items()}}
                for i, doc in enumerate(docs)}

    def _block_scores(self, block: ScoringBlock, docs: list[Document]) -> list[Measurement]:
        recorded = [self.stage.recorded(block, doc) for doc in docs]
        unscored = [doc for doc, measurement in zip(docs, recorded) if measurement is None]
        measured = iter(block.measure_batch(unscored) if unscored else [])
        return [measurement or next(measured) for measurement in recorded]


def _read_measured(run: StageRun, shard: Shard) -> dict[str, dict[str, Any]]:
    return json.loads(measured_path(run, shard).read_text(encoding="utf-8"))


def read_figures(run: StageRun) -> dict[str, Any]:
    return json.loads((run.work_dir / FIGURES_FILE).read_text(encoding="utf-8"))


@dataclass(frozen=True)
class FiguresWork(OneItem):
    """Each block's limits per language from the whole corpus's scores."""

    stage_run: StageRun
    stage: ScoreStage
    unit: ClassVar[str] = "figures"

    def run(self, item: str) -> dict[str, Any]:
        values: dict[str, dict[str, list[float]]] = {block.name: {} for block in self.stage.blocks}
        for shard in self.stage_run.plan().shards:
            for entry in _read_measured(self.stage_run, shard).values():
                for name, (value, _) in entry["scores"].items():
                    values[name].setdefault(entry["language"], []).append(value)
        figures = {block.name: block.corpus_figures(values[block.name]) for block in self.stage.blocks}
        write_json_atomic(self.stage_run.work_dir / FIGURES_FILE, figures)
        return {"documents": sum(len(v) for v in next(iter(values.values()), {}).values())}


@dataclass(frozen=True)
class ScoreDecisions:
    """The write phase's decisions from the stored scores and the corpus figures."""

    stage_run: StageRun
    stage: ScoreStage
    name: str = NAME

    def depends(self, shard: Shard) -> str:
        return digest([read_figures(self.stage_run), measured_path(self.stage_run, shard).stat().st_mtime_ns])

    def decider(self, shard: Shard) -> Decider:
        measured, figures = _read_measured(self.stage_run, shard), read_figures(self.stage_run)
        return lambda docs: [self.decide(measured, figures, doc) for doc in docs]

    def decide(self, measured: dict[str, dict[str, Any]], figures: dict[str, Any], doc: Document) -> Removal | None:
        entry = measured.get(str(doc.line))
        if entry is None:
            raise InputError(f"{doc.location}: no scores measured; rerun the same command")
        measurements = {block.name: Measurement.from_json(entry["scores"][block.name]) for block in self.stage.blocks}
        for name, measurement in measurements.items():
            record_score(doc, name, measurement.value)
        for block in self.stage.blocks:
            removal = block.judge(doc, measurements[block.name], figures_for(figures[block.name], entry["language"]))
            if removal is not None:
                return removal
        return None


def figures_summary(run: StageRun) -> dict[str, Any]:
    """Manifest extras: the limits each block used, per language."""
    return {"figures": read_figures(run)}


def score_job(stage: ScoreStage, config: StageConfig) -> Job:
    run = stage_run(stage, config)
    measure = Step(f"{NAME}.measure", f"{NAME} measure", MeasureWork(run, stage), run.shard_markers("measure"))
    figures = Step(f"{NAME}.figures", f"{NAME} corpus figures", FiguresWork(run, stage), run.step_markers("figures"),
                   single=True)
    return Job(f"qwen-data {NAME}", run.output, (plan_step(run),),
               (measure, figures, *finish_steps(run, ScoreDecisions(run, stage), [measure, figures], figures_summary)),
               functools.partial(stage_report, run.output))


def run_score_stage(stage: ScoreStage, config: StageConfig) -> dict[str, Any]:
    """Run on this machine with ``config.workers``; returns the manifest."""
    from tools.executor.local import LocalExecutor
    from tools.stage.stages import read_manifest

    LocalExecutor(config.workers, config.progress).run(score_job(stage, config))
    return read_manifest(config.output)
