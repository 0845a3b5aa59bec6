"""Running the stages in order, in this process, each resumable, and recording what each did.

A stage that finished writes ``OUTPUT/.pipeline/<stage>.json`` (its counts, bytes, time and the
files it produced with their sources); a rerun skips it and reads those files instead. A stage that
was interrupted is simply called again: the stage framework skips the shards it had finished.
Sources stay separate through every stage (each kept shard remembers its source), so the
tokenize step writes one dataset per source, blended by qwen-train with the sources' weights.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from tools.decontaminate.benchmarks import BenchmarkError, BenchmarkSpec, load_benchmarks
from tools.decontaminate.stage import REPORT_FILE, run_decontamination
from tools.pipeline.config import PipelineConfig
from tools.stage.reader import InputError, expand_inputs
from tools.stage.runner import StageConfig, list_shards
from tools.stage.stages import run_corpus_stage, run_document_stage
from tools.stage.writer import write_json_atomic

STATE_DIR = ".pipeline"
CONFIG_RECORD = "pipeline.json"


@dataclass(frozen=True)
class SourceFile:
    """A file a stage reads, and the source its documents came from."""

    path: str
    source: str


def _stage_config(config: PipelineConfig, inputs: list[SourceFile], output: Path) -> StageConfig:
    return StageConfig(inputs=tuple(f.path for f in inputs), output=output, text_field=config.text_field,
                       id_field=config.id_field, workers=config.workers, progress=config.progress)


def _run_filter_stage(name: str, settings: Any, stage_config: StageConfig) -> None:
    if name == "clean":
        run_document_stage(settings, stage_config)
    elif name == "decontaminate":
        try:
            items = load_benchmarks([BenchmarkSpec.parse(spec) for spec in settings.benchmarks])
        except BenchmarkError as error:
            raise InputError(str(error)) from None
        run_decontamination(items, settings, stage_config)
    else:
        run_corpus_stage(settings, stage_config)


def _file_bytes(patterns: list[str]) -> int:
    return sum(os.path.getsize(f.path) for f in expand_inputs(patterns))


def _claim(config: PipelineConfig) -> None:
    """Refuse to resume an output directory that a pipeline with another configuration wrote."""
    record = {"stages": config.raw.get("stages"), "sources": config.raw.get("sources"),
              "text_field": config.text_field, "id_field": config.id_field}
    path = config.output / CONFIG_RECORD
    if path.exists():
        if json.loads(path.read_text(encoding="utf-8")) != json.loads(json.dumps(record)):
            raise InputError(f"{config.output} holds a pipeline run with another configuration than {config.path}; "
                             "use a fresh output directory")
        return
    write_json_atomic(path, record)


def _once(config: PipelineConfig, key: str, body: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run ``body`` unless an earlier run recorded ``key`` as finished; returns its record."""
    marker = config.output / STATE_DIR / f"{key}.json"
    if marker.exists():
        record = json.loads(marker.read_text(encoding="utf-8"))
        print(f"pipeline: {key}: finished in an earlier run, skipped", file=sys.stderr)
        return {**record, "skipped": True}
    print(f"pipeline: {key}: running", file=sys.stderr)
    started = time.perf_counter()
    record = {**body(), "seconds": round(time.perf_counter() - started, 3)}
    write_json_atomic(marker, record)
    return {**record, "skipped": False}


def _filter_stage_record(config: PipelineConfig, name: str, settings: Any, inputs: list[SourceFile]) -> dict[str, Any]:
    stage_config = _stage_config(config, inputs, config.output / name)
    _run_filter_stage(name, settings, stage_config)
    manifest = json.loads((stage_config.output / "manifest.json").read_text(encoding="utf-8"))
    shards = list_shards(stage_config)
    outputs = [SourceFile(str(stage_config.output / "kept" / f"{shard.name}.jsonl"), inputs[shard.corpus].source)
               for shard in shards]
    record = {"stage": name, "counts": manifest["counts"], "bytes_in": _file_bytes([f.path for f in inputs]),
              "bytes_kept": _file_bytes([f.path for f in outputs]), "outputs": [vars(f) for f in outputs]}
    if name == "decontaminate":  # edited documents are kept, so the counts alone do not show them
        report = json.loads((stage_config.output / REPORT_FILE).read_text(encoding="utf-8"))
        record["documents_cut"] = report["documents_cut"]
    return record


def _tokenize_record(config: PipelineConfig, source: str, inputs: list[SourceFile]) -> dict[str, Any]:
    from tools.tokenize.cli import tokenize  # megatron-core is imported only when this stage runs

    stage_config = _stage_config(config, inputs, config.output / "tokenize" / source)
    manifest = tokenize(stage_config, config.tokenize.tokenizer, config.tokenize.dataset_name)
    return {"stage": "tokenize", "source": source, "counts": manifest["counts"],
            "bytes_in": _file_bytes([f.path for f in inputs]), "dataset": manifest["dataset"]}


def run_pipeline(config: PipelineConfig) -> list[dict[str, Any]]:
    """Every stage's record, in order (filter stages, then one tokenize record per source)."""
    config.output.mkdir(parents=True, exist_ok=True)
    _claim(config)
    files = [SourceFile(pattern, source.name) for source in config.sources for pattern in source.inputs]
    records = []
    for name, settings in config.stages.items():
        current = files
        record = _once(config, name, lambda: _filter_stage_record(config, name, settings, current))
        files = [SourceFile(**f) for f in record["outputs"]]
        records.append(record)
    for source in config.sources:
        inputs = [f for f in files if f.source == source.name]
        records.append(_once(config, f"tokenize-{source.name}", lambda: _tokenize_record(config, source.name, inputs)))
    return records
