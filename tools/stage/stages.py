"""The two kinds of stage, and the jobs (lists of steps, ``tools.executor``) that run them.

A ``DocumentStage`` decides about each document on its own (clean, a list of blocks: see
``tools.blocks``), in batches: plan, write (per shard), finish. A ``CorpusStage`` needs the whole corpus (dedup): plan, index (per shard), the stage's own
merge steps (per hash partition: no step holds the whole corpus), write (per shard, from the
merge's decisions), finish. The finish step sums the per-shard counts into ``manifest.json`` and
prints the summary. Any executor runs these jobs: this machine's process pool or SLURM arrays.
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator, Protocol, Sequence

from foundation.records.document import Document, Removal
from foundation.records.reader import read_documents
from tools.executor.job import Job, OneItem, Step
from tools.executor.markers import Markers
from tools.stage.errors import InputError
from tools.stage.filter import Decider, DeciderSource, FilterTask, KeptJsonl, KeptOutput
from tools.stage.manifest import format_summary, total_counts, write_manifest
from tools.stage.plan import PlanWork, ShardWork, StageRun
from tools.stage.runner import Shard, StageConfig, digest


class DocumentStage(Protocol):
    """Per-document stage. Must be picklable (a dataclass of its config): it runs in workers."""

    name: str
    libraries: tuple[str, ...]  # PyPI names whose versions go to the manifest

    def params(self) -> dict[str, Any]: ...

    def decide_batch(self, docs: Sequence[Document]) -> list[Removal | None]:
        """For each document in order, a Removal to drop it, or None to keep it (``doc.text`` may be
        rewritten, fields added)."""


class CorpusStage(Protocol):
    """Whole-corpus stage. Must be picklable: every method runs in workers or SLURM tasks."""

    name: str
    libraries: tuple[str, ...]

    def params(self) -> dict[str, Any]: ...

    def index_shard(self, shard: Shard, documents: Iterator[Document], work_dir: Path) -> dict[str, Any]:
        """Write this shard's index files under ``work_dir``; return a small JSON-able result
        (include ``documents``: how many were indexed)."""

    def merge_steps(self, run: StageRun) -> list[Step]:
        """The steps between index and write, each split into ``run.partitions`` items or more."""

    def shard_removals(self, run: StageRun, shard: Shard) -> dict[int, Removal]:
        """The merge's decisions about one shard: line -> Removal."""

    def removals_digest(self, run: StageRun, shard: Shard) -> str:
        """A digest of ``shard_removals`` (cheap: the shard is written again when it changes)."""

    def summary(self, run: StageRun) -> dict[str, Any]:
        """Manifest extras, from the merge's outputs."""


class PipelineStage(Protocol):
    """What the pipeline runs: any stage that makes its own job."""

    name: str

    def job(self, config: StageConfig, partitions: int) -> Job:
        """The stage's steps over ``config`` (``partitions``: of a whole-corpus merge)."""

    def depends(self) -> str | None:
        """A digest of what the outputs depend on beyond the inputs and params (decontaminate:
        the benchmark contents), or None."""


class CorpusJob:
    """Base of a ``CorpusStage`` dataclass: its job for the pipeline."""

    def job(self, config: StageConfig, partitions: int) -> Job:
        return corpus_stage_job(self, config, partitions)

    def depends(self) -> str | None:
        return None


@dataclass(frozen=True)
class WriteWork(ShardWork):
    """The write phase: kept/, removed/, rejected/ per shard, by the decisions of ``decisions``."""

    decisions: DeciderSource | None = None
    kept_output: KeptOutput = KeptJsonl()

    def key(self, item: str) -> dict[str, Any]:
        shard = self.shard(item)
        return {"fingerprint": shard.fingerprint(), "depends": self.decisions.depends(shard)}

    def run(self, item: str) -> dict[str, Any]:
        return FilterTask(self.decisions, self.stage_run.config, self.kept_output)(self.shard(item))


def _phase(markers: Markers, since: float) -> dict[str, Any]:
    """Timing of a step's items that ran in this run (from their markers): wall seconds from the
    first start to the last end, the items' wall and CPU seconds, the largest item peak memory."""
    every = list(map(json.loads, _marker_texts(markers.directory)))
    items = len(every)
    records = [m for m in every if m.get("started", 0) >= since]
    if not records:
        return {"items": items, "ran": 0}
    ends = [m["started"] + m["seconds"] for m in records]
    peaks = [m["peak_rss_mb"] for m in records if m.get("peak_rss_mb") is not None]
    return {"items": items, "ran": len(records), "wall_s": round(max(ends) - min(m["started"] for m in records), 3),
            "task_s": round(sum(m["seconds"] for m in records), 3),
            "cpu_s": round(sum(m.get("cpu_s", 0) for m in records), 3), "peak_rss_mb": max(peaks, default=None)}


def _marker_texts(directory: Path) -> Iterator[str]:
    if Path(directory).is_dir():
        for path in sorted(Path(directory).glob("*.json")):
            yield path.read_text(encoding="utf-8")


@dataclass(frozen=True)
class FinishWork(OneItem):
    """Totals of the write step into ``manifest.json`` (with each step's timing) and the summary."""

    stage_run: StageRun
    write_markers: Path
    phases: tuple[tuple[str, str], ...]  # (step description, its markers directory)
    extras: Callable[[StageRun], dict[str, Any]] | None = None
    unit: ClassVar[str] = "finish"

    def key(self, item: str) -> dict[str, Any]:
        markers = Markers(self.write_markers)
        return {"written": digest([markers.read(s.name) for s in self.stage_run.plan().shards])}

    def run(self, item: str) -> dict[str, Any]:
        run, plan = self.stage_run, self.stage_run.plan()
        markers = Markers(self.write_markers)
        records = [markers.read(shard.name) for shard in plan.shards]
        missing = [shard.label for shard, record in zip(plan.shards, records) if record is None]
        if missing:
            raise InputError(f"{len(missing)} shards have no output yet (first: {missing[0]}); "
                             "rerun the same command to finish them")
        totals = total_counts(record["result"] for record in records)
        skipped = sum(1 for record in records if record["started"] < plan.planned_at)
        wall = time.time() - plan.planned_at
        phases = {name: _phase(Markers(Path(directory)), plan.planned_at)
                  for name, directory in self.phases}
        extra = {**(self.extras(run) if self.extras else {}), "skipped_files": plan.skipped_files,
                 "shards": len(plan.shards), "phases": phases}
        write_manifest(run.output, run.stage, {**run.params, **run.config.resume_key()},
                       [shard.label for shard in plan.shards], totals, wall, run.libraries, extra)
        print(format_summary(run.stage, totals, wall, skipped, len(plan.shards)), flush=True)
        return {"counts": totals}


def stage_report(output: Path) -> str:
    """The summary table of a finished stage, from its manifest (printed after a followed job)."""
    manifest = json.loads((Path(output) / "manifest.json").read_text(encoding="utf-8"))
    return format_summary(manifest["stage"], manifest["counts"], manifest["wall_time_s"], 0, manifest["shards"])


def plan_step(run: StageRun) -> Step:
    return Step(f"{run.stage}.plan", f"{run.stage} plan", PlanWork(run), run.step_markers("plan"), single=True)


def write_step(run: StageRun, decisions: DeciderSource, kept_output: KeptOutput = KeptJsonl()) -> Step:
    """The write phase, per shard: kept (to ``kept_output``), removed/, rejected/."""
    return Step(f"{run.stage}.write", run.stage, WriteWork(run, decisions, kept_output), run.shard_markers("write"))


def finish_steps(run: StageRun, decisions: DeciderSource, earlier: list[Step],
                 extras: Callable[[StageRun], dict[str, Any]] | None = None) -> list[Step]:
    """The write and finish steps that end every stage."""
    write = write_step(run, decisions)
    phases = tuple((step.description, str(step.markers)) for step in [*earlier, write])
    finish = Step(f"{run.stage}.finish", f"{run.stage} finish",
                  FinishWork(run, write.markers, phases, extras), run.step_markers("finish"), single=True)
    return [write, finish]


@dataclass(frozen=True)
class DocumentDecisions:
    stage: DocumentStage

    @property
    def name(self) -> str:
        return self.stage.name

    def depends(self, shard: Shard) -> str:
        return ""

    def decider(self, shard: Shard) -> Decider:
        return self.stage.decide_batch


def stage_run(stage: DocumentStage | CorpusStage, config: StageConfig, partitions: int = 1) -> StageRun:
    return StageRun(stage.name, stage.params(), tuple(stage.libraries), config, partitions)


def document_stage_job(stage: DocumentStage, config: StageConfig, decisions: DeciderSource | None = None,
                       middle: Callable[[StageRun], list[Step]] | None = None) -> Job:
    """``decisions``: instead of ``stage.decide_batch`` alone (decontaminate's depend on a scan);
    ``middle``: steps between plan and write."""
    run = stage_run(stage, config)
    steps = middle(run) if middle else []
    return Job(f"qwen-data {stage.name}", run.output, (plan_step(run),),
               (*steps, *finish_steps(run, decisions or DocumentDecisions(stage), steps)),
               functools.partial(stage_report, run.output))


@dataclass(frozen=True)
class IndexWork(ShardWork):
    """A corpus stage's index of one shard (valid documents with a unique id only)."""

    stage: CorpusStage | None = None

    def run(self, item: str) -> dict[str, Any]:
        shard, config = self.shard(item), self.stage_run.config
        documents = (doc for doc in read_documents(shard.path, config.parser, shard.byte_range)
                     if isinstance(doc, Document) and doc.duplicate_of is None)
        return self.stage.index_shard(shard, documents, self.stage_run.work_dir)


def index_markers(run: StageRun) -> Markers:
    return Markers(run.shard_markers("index"))


def check_indexed(run: StageRun, shard: Shard) -> None:
    """The shard's input is what was indexed; else one line naming the file (it vanished or
    changed between the index and write phases, which would misplace every decision)."""
    marker = index_markers(run).read(shard.name)
    if marker is None:
        raise InputError(f"{shard.label}: not indexed; rerun the same command to index it")
    now = shard.fingerprint()
    if marker["key"]["fingerprint"] != json.loads(json.dumps(now)):
        what = "vanished" if "error" in now else "changed"
        raise InputError(f"{shard.label}: the input file {what} after it was indexed; rerun the same command "
                         "to index it again")


@dataclass(frozen=True)
class _CorpusDecisions:
    stage: CorpusStage
    stage_run: StageRun

    @property
    def name(self) -> str:
        return self.stage.name

    def depends(self, shard: Shard) -> str:
        check_indexed(self.stage_run, shard)
        return self.stage.removals_digest(self.stage_run, shard)

    def decider(self, shard: Shard) -> Decider:
        removals = self.stage.shard_removals(self.stage_run, shard)
        return lambda docs: [removals.get(doc.line) for doc in docs]


def corpus_stage_job(stage: CorpusStage, config: StageConfig, partitions: int) -> Job:
    run = stage_run(stage, config, partitions)
    index = Step(f"{run.stage}.index", f"{run.stage} index", IndexWork(run, stage), run.shard_markers("index"))
    steps = [index, *stage.merge_steps(run)]
    return Job(f"qwen-data {stage.name}", run.output, (plan_step(run),),
               (*steps, *finish_steps(run, _CorpusDecisions(stage, run), steps, stage.summary)),
               functools.partial(stage_report, run.output))


def read_manifest(output: Path) -> dict[str, Any]:
    return json.loads((Path(output) / "manifest.json").read_text(encoding="utf-8"))


def run_document_stage(stage: DocumentStage, config: StageConfig) -> dict[str, Any]:
    """Run on this machine with ``config.workers``; returns the manifest."""
    from tools.executor.local import LocalExecutor  # tools.executor imports this package

    LocalExecutor(config.workers, config.progress).run(document_stage_job(stage, config))
    return read_manifest(config.output)


def run_corpus_stage(stage: CorpusStage, config: StageConfig, partitions: int | None = None) -> dict[str, Any]:
    """Run on this machine with ``config.workers`` (and as many merge partitions unless given)."""
    from tools.executor.local import LocalExecutor

    job = corpus_stage_job(stage, config, partitions or config.workers)
    LocalExecutor(config.workers, config.progress).run(job)
    return read_manifest(config.output)
