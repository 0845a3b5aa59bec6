"""The pipeline's own steps around the stages' steps: announcing a stage, recording what it did,
and the summary at the end.

``OUTPUT/.work/sources.json`` lists the sources' files; after each stage a record,
``OUTPUT/.pipeline/<stage>.json``, holds its counts, bytes, time, the fingerprints of what it read
and its outputs with the source each came from. The next stage takes its inputs from that record
when it plans, so the whole pipeline is one chain of steps that can be submitted at once.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from foundation.atomic_write import write_json_atomic
from tools.decontaminate.stage import REPORT_FILE
from tools.executor.job import OneItem, Step, Work
from tools.pipeline.config import PipelineConfig
from tools.pipeline.summary import write_summary
from tools.stage.runner import StageConfig, digest, file_fingerprint

STATE_DIR = ".pipeline"
SOURCES_RECORD = ".work/sources.json"


def record_path(output: Path, key: str) -> Path:
    return Path(output) / STATE_DIR / f"{key}.json"


def _read(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _inputs(config: StageConfig) -> list[dict[str, str]]:
    outputs = _read(Path(config.inputs_record))["outputs"]
    return [o for o in outputs if config.inputs_source in (None, o["source"])]


def _state(config: StageConfig, benchmarks: str | None) -> str:
    return digest({"inputs": [file_fingerprint(o["path"]) for o in _inputs(config)], "benchmarks": benchmarks})


@dataclass(frozen=True)
class AnnouncedPlan:
    """A stage's plan step that first says whether the stage runs, and why."""

    inner: Work
    key_name: str  # the record's name: clean, tokenize-web
    output: str
    config: StageConfig
    benchmarks: str | None  # digest of the benchmark contents (decontaminate)
    unit: ClassVar[str] = "plan"

    def items(self) -> list[str]:
        return self.inner.items()

    def key(self, item: str) -> dict[str, Any]:
        return self.inner.key(item)

    def run(self, item: str) -> dict[str, Any]:
        earlier = _read(record_path(Path(self.output), self.key_name))
        if earlier is None:
            print(f"pipeline: {self.key_name}: running", file=sys.stderr, flush=True)
        elif earlier.get("state") == _state(self.config, self.benchmarks):
            print(f"pipeline: {self.key_name}: finished in an earlier run, skipped", file=sys.stderr, flush=True)
        else:
            print(f"pipeline: {self.key_name}: its inputs changed since the earlier run; running again",
                  file=sys.stderr, flush=True)
        return self.inner.run(item)


def announced(plan: Step, key_name: str, output: Path, config: StageConfig, benchmarks: str | None) -> Step:
    return Step(plan.name, plan.description, AnnouncedPlan(plan.work, key_name, str(output), config, benchmarks),
                plan.markers, single=True)


def _file_bytes(paths: list[str]) -> int:
    return sum(os.path.getsize(path) for path in paths)


@dataclass(frozen=True)
class RecordWork(OneItem):
    """Writes a stage's record after its last step."""

    key_name: str
    output: str
    config: StageConfig
    benchmarks: str | None
    stage: str  # clean, exact_dedup, ..., tokenize
    source: str | None = None  # tokenize: the source
    unit: ClassVar[str] = "record"

    def key(self, item: str) -> dict[str, Any]:
        return {"state": _state(self.config, self.benchmarks)}

    def run(self, item: str) -> dict[str, Any]:
        inputs = _inputs(self.config)
        stage_output = Path(self.config.output)
        manifest = json.loads((stage_output / "manifest.json").read_text(encoding="utf-8"))
        plan = json.loads((stage_output / ".work" / "plan.json").read_text(encoding="utf-8"))
        source_of = {o["path"]: o["source"] for o in inputs}
        record: dict[str, Any] = {"stage": self.stage, "counts": manifest["counts"],
                                  "bytes_in": _file_bytes([o["path"] for o in inputs]),
                                  "seconds": manifest["wall_time_s"], "state": _state(self.config, self.benchmarks)}
        if self.source is not None:
            record |= {"source": self.source, "dataset": manifest["dataset"]}
            if manifest["dataset"]["prefix"] is None:
                print(f"pipeline: warning: source {self.source!r} has no documents left to tokenize; it is left "
                      "out of the training data", file=sys.stderr)
        else:
            from tools.stage.runner import shard_name

            outputs = [{"path": str(stage_output / "kept" / f"{shard_name(s['path'], s.get('part'))}.jsonl"),
                        "source": source_of[s["path"]]} for s in plan["shards"]]
            record |= {"bytes_kept": _file_bytes([o["path"] for o in outputs]), "outputs": outputs}
            if self.stage == "decontaminate":  # edited documents are kept, so the counts alone do not show them
                record["documents_cut"] = json.loads((stage_output / REPORT_FILE).read_text())["documents_cut"]
        write_json_atomic(record_path(Path(self.output), self.key_name), record)
        return {"counts": manifest["counts"]}


@dataclass(frozen=True)
class SummaryWork(OneItem):
    """``pipeline_summary.md/.json`` from every record; fails when no source has data left."""

    config: PipelineConfig
    keys: tuple[str, ...]
    unit: ClassVar[str] = "summary"

    def key(self, item: str) -> dict[str, Any]:
        return {"records": digest([_read(record_path(self.config.output, key)) for key in self.keys])}

    def run(self, item: str) -> dict[str, Any]:
        from tools.stage.errors import InputError

        records = [_read(record_path(self.config.output, key)) for key in self.keys]
        if not any(r["dataset"]["prefix"] for r in records if r["stage"] == "tokenize"):
            raise InputError("no source has documents left to tokenize; see the removed/ and rejected/ "
                             f"directories under {self.config.output}")
        print(write_summary(self.config, records), flush=True)
        return {"stages": len(records)}


def summary_text(output: Path) -> str:
    from tools.pipeline.summary import SUMMARY_MARKDOWN

    return (Path(output) / SUMMARY_MARKDOWN).read_text(encoding="utf-8")
