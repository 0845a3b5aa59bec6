"""The two kinds of stage and the drivers that run them.

A ``DocumentStage`` decides about each document on its own (clean, decontaminate). A
``CorpusStage`` needs the whole corpus (dedup): it indexes every shard (in parallel, on one machine
or many), decides once over all indexes, then every shard is filtered by those decisions.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Protocol

from tools.stage.document import Document, Removal
from tools.stage.filter import Decider, FilterTask
from tools.stage.manifest import format_summary, total_counts, write_manifest
from tools.stage.errors import InputError
from tools.stage.reader import read_documents
from tools.stage.runner import Markers, Shard, StageConfig, digest, run_shards
from tools.stage.startup import MARKERS_DIR, RunPlan, prepare_run
from tools.stage.writer import write_json_atomic

WORK_DIR = ".work"


class DocumentStage(Protocol):
    """Per-document stage. Must be picklable (a dataclass of its config): it runs in workers."""

    name: str
    libraries: tuple[str, ...]  # PyPI names whose versions go to the manifest

    def params(self) -> dict[str, Any]: ...

    def process(self, doc: Document) -> Removal | None:
        """Return a Removal to drop ``doc``, or None to keep it (``doc.text`` may be rewritten)."""


class CorpusStage(Protocol):
    """Whole-corpus stage. Must be picklable: ``index_shard`` runs in workers."""

    name: str
    libraries: tuple[str, ...]

    def params(self) -> dict[str, Any]: ...

    def index_shard(self, shard: Shard, documents: Iterator[Document], work_dir: Path) -> dict[str, Any]:
        """Write this shard's index files under ``work_dir``; return a small JSON-able result
        (include ``documents``: how many were indexed)."""

    def decide(self, shards: list[Shard], work_dir: Path, config: StageConfig) -> tuple[dict[int, dict[int, Removal]], dict[str, Any]]:
        """From all indexes: removals per shard index (line -> Removal), and manifest extras."""


@dataclass
class RunSummary:
    manifest: dict[str, Any]
    text: str


def _finish(stage, config: StageConfig, plan: RunPlan, counts: list[dict], skipped: int,
            started: float, extra: dict[str, Any] | None = None) -> RunSummary:
    totals = total_counts(counts)
    wall = time.perf_counter() - started
    params = {**stage.params(), **config.resume_key()}
    manifest = write_manifest(config.output, stage.name, params, [s.path for s in plan.shards], totals, wall,
                              stage.libraries, {**(extra or {}), "skipped_files": plan.skipped_files})
    text = format_summary(stage.name, totals, wall, skipped, len(plan.shards))
    print(text)
    return RunSummary(manifest, text)


@dataclass(frozen=True)
class _DocumentDecider:
    stage: DocumentStage

    @property
    def name(self) -> str:
        return self.stage.name

    def decider(self, shard: Shard) -> Decider:
        return self.stage.process


def run_document_stage(stage: DocumentStage, config: StageConfig, plan: RunPlan | None = None,
                       depends: dict[str, str] | None = None) -> RunSummary:
    """``plan``: the start-up already done by a caller; ``depends``: per shard name, a digest of
    what else its result depends on (see ``Markers``)."""
    started = time.perf_counter()
    plan = plan or prepare_run(config, stage.name, stage.params())
    markers = Markers(Path(config.output) / MARKERS_DIR, "write", depends or {})
    phase = run_shards(FilterTask(_DocumentDecider(stage), config), plan.shards, markers, config.workers,
                       stage.name, config.progress)
    return _finish(stage, config, plan, [phase.results[s.index] for s in plan.shards], phase.skipped, started)


@dataclass(frozen=True)
class _IndexTask:
    stage: CorpusStage
    config: StageConfig
    work_dir: Path

    def __call__(self, shard: Shard) -> dict[str, Any]:
        documents = (item for item in read_documents(shard.path, self.config.parser)
                     if isinstance(item, Document) and item.duplicate_of is None)
        return self.stage.index_shard(shard, documents, self.work_dir)


@dataclass(frozen=True)
class _CorpusDecider:
    stage: CorpusStage
    work_dir: Path

    @property
    def name(self) -> str:
        return self.stage.name

    def decider(self, shard: Shard) -> Decider:
        path = self.work_dir / "removals" / f"{shard.name}.json"
        removals = {int(line): Removal(r["reason"], r["details"])
                    for line, r in json.loads(path.read_text(encoding="utf-8")).items()}
        return lambda doc: removals.get(doc.line)


@dataclass(frozen=True)
class ShardSelection:
    """This process's part of the index phase when several machines share it."""

    index: int
    count: int

    def select(self, shards: list[Shard]) -> list[Shard]:
        return [s for s in shards if s.index % self.count == self.index]


def run_corpus_stage(stage: CorpusStage, config: StageConfig, phase: str = "all",
                     selection: ShardSelection | None = None) -> RunSummary | None:
    """``phase``: ``index`` (only this selection's index shards, then stop), ``merge`` (decide and
    write; every shard must be indexed), or ``all`` (index what is missing, then merge)."""
    started = time.perf_counter()
    plan = prepare_run(config, stage.name, stage.params(), temporaries=phase != "index")
    shards = plan.shards
    out = Path(config.output)
    work_dir = out / WORK_DIR
    index_markers = Markers(out / MARKERS_DIR, "index")
    if phase in ("index", "all"):
        selected = selection.select(shards) if selection else shards
        run_shards(_IndexTask(stage, config, work_dir), selected, index_markers, config.workers,
                   f"{stage.name} index", config.progress)
        if phase == "index":
            print(f"{stage.name}: indexed {len(selected)} of {len(shards)} shards; run --phase merge when all are done")
            return None
    missing = [s.name for s in shards if index_markers.result(s) is None]
    if missing:
        raise InputError(f"{len(missing)} of {len(shards)} shards are not indexed yet (first: {missing[0]}); "
                         "run --phase index for them first")
    decided_path = work_dir / "decided.json"
    fingerprints = [s.fingerprint() for s in shards]
    decided = json.loads(decided_path.read_text(encoding="utf-8")) if decided_path.exists() else {}
    if decided.get("fingerprints") != fingerprints or "depends" not in decided:
        # Any change to any shard may change the decisions about every other shard.
        removals, extra = stage.decide(shards, work_dir, config)
        shard_removals = {shard.name: {str(line): {"reason": r.reason, "details": r.details}
                                       for line, r in sorted(removals.get(shard.index, {}).items())}
                          for shard in shards}
        for name, value in shard_removals.items():
            write_json_atomic(work_dir / "removals" / f"{name}.json", value)
        decided = {"fingerprints": fingerprints, "extra": extra,
                   "depends": {name: digest(value) for name, value in shard_removals.items()}}
        write_json_atomic(decided_path, decided)
    # A shard is written again exactly when the decisions about its documents changed.
    write_markers = Markers(out / MARKERS_DIR, "write", decided["depends"])
    written = run_shards(FilterTask(_CorpusDecider(stage, work_dir), config), shards, write_markers,
                         config.workers, f"{stage.name} write", config.progress)
    if written.skipped:
        print(f"{stage.name}: resumed; {written.skipped} shards were written earlier", file=sys.stderr)
    return _finish(stage, config, plan, [written.results[s.index] for s in shards], written.skipped,
                   started, decided["extra"])
