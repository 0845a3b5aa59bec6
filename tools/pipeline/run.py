"""Running the stages in order, in this process, each resumable, and recording what each did.

Everything that can be checked is checked before the first stage runs: the output directory, the
sources' files, the text field, the benchmarks and the tokenizer. A stage that finished writes
``OUTPUT/.pipeline/<stage>.json``: its counts, bytes, time, the files it produced with their
sources, and the fingerprints of the files it read (and the benchmark contents it used). A rerun
skips a stage only when those still match; otherwise the stage runs again and, through its own
markers, redoes exactly the shards whose input changed (the whole stage for dedup and
decontamination when their corpus-wide decisions changed). Sources stay separate through every
stage, so the tokenize step writes one dataset per source, blended by qwen-train with the
sources' weights.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from tools.decontaminate.benchmarks import BenchmarkError, BenchmarkItem, BenchmarkSpec, load_benchmarks
from tools.decontaminate.stage import REPORT_FILE, run_decontamination
from tools.pipeline.config import PipelineConfig
from tools.stage.errors import InputError
from tools.stage.inputs import list_inputs
from tools.stage.runner import StageConfig, digest, file_fingerprint, shard_name
from tools.stage.stages import run_corpus_stage, run_document_stage
from tools.stage.startup import check_output, check_text_field
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


def _run_filter_stage(name: str, settings: Any, stage_config: StageConfig, benchmarks: list[BenchmarkItem]) -> None:
    if name == "clean":
        run_document_stage(settings, stage_config)
    elif name == "decontaminate":
        run_decontamination(benchmarks, settings, stage_config)
    else:
        run_corpus_stage(settings, stage_config)


def _file_bytes(files: list[SourceFile]) -> int:
    return sum(os.path.getsize(f.path) for f in files)


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


def _once(config: PipelineConfig, key: str, state: Any, body: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run ``body`` unless an earlier run recorded ``key`` as finished from the same ``state``
    (the fingerprints of what the stage reads); returns its record."""
    marker = config.output / STATE_DIR / f"{key}.json"
    state_digest = digest(state)
    if marker.exists():
        record = json.loads(marker.read_text(encoding="utf-8"))
        if record.get("state") == state_digest:
            print(f"pipeline: {key}: finished in an earlier run, skipped", file=sys.stderr)
            return {**record, "skipped": True}
        print(f"pipeline: {key}: its inputs changed since the earlier run; running again", file=sys.stderr)
    else:
        print(f"pipeline: {key}: running", file=sys.stderr)
    marker.unlink(missing_ok=True)
    started = time.perf_counter()
    record = {**body(), "seconds": round(time.perf_counter() - started, 3), "state": state_digest}
    write_json_atomic(marker, record)
    return {**record, "skipped": False}


def _filter_stage_record(config: PipelineConfig, name: str, settings: Any, inputs: list[SourceFile],
                         benchmarks: list[BenchmarkItem]) -> dict[str, Any]:
    stage_config = _stage_config(config, inputs, config.output / name)
    _run_filter_stage(name, settings, stage_config, benchmarks)
    manifest = json.loads((stage_config.output / "manifest.json").read_text(encoding="utf-8"))
    outputs = [SourceFile(str(stage_config.output / "kept" / f"{shard_name(f.path)}.jsonl"), f.source) for f in inputs]
    record = {"stage": name, "counts": manifest["counts"], "bytes_in": _file_bytes(inputs),
              "bytes_kept": _file_bytes(outputs), "outputs": [vars(f) for f in outputs]}
    if name == "decontaminate":  # edited documents are kept, so the counts alone do not show them
        report = json.loads((stage_config.output / REPORT_FILE).read_text(encoding="utf-8"))
        record["documents_cut"] = report["documents_cut"]
    return record


def _tokenize_record(config: PipelineConfig, source: str, inputs: list[SourceFile]) -> dict[str, Any]:
    from tools.tokenize.cli import tokenize  # megatron-core is imported only when this stage runs

    stage_config = _stage_config(config, inputs, config.output / "tokenize" / source)
    manifest = tokenize(stage_config, config.tokenize.tokenizer, config.tokenize.dataset_name)
    if manifest["dataset"]["prefix"] is None:
        print(f"pipeline: warning: source {source!r} has no documents left to tokenize; it is left out of the "
              "training data", file=sys.stderr)
    return {"stage": "tokenize", "source": source, "counts": manifest["counts"],
            "bytes_in": _file_bytes(inputs), "dataset": manifest["dataset"]}


def _source_files(config: PipelineConfig) -> list[SourceFile]:
    files = []
    for source in config.sources:
        listing = list_inputs(source.inputs)
        listing.warn_skipped()
        files += [SourceFile(f.path, source.name) for f in listing.files]
    return files


def _benchmarks(config: PipelineConfig) -> list[BenchmarkItem]:
    settings = config.stages.get("decontaminate")
    if settings is None:
        return []
    try:
        return load_benchmarks([BenchmarkSpec.parse(spec) for spec in settings.benchmarks])
    except BenchmarkError as error:
        raise InputError(str(error)) from None


def _fingerprints(files: list[SourceFile]) -> list[dict[str, Any]]:
    return [file_fingerprint(f.path) for f in files]


def run_pipeline(config: PipelineConfig) -> list[dict[str, Any]]:
    """Every stage's record, in order (filter stages, then one tokenize record per source)."""
    check_output(config.output)
    files = _source_files(config)
    check_text_field([f.path for f in files], config.text_field)
    benchmarks = _benchmarks(config)
    config.tokenize.tokenizer.check()
    _claim(config)
    records = []
    for name, settings in config.stages.items():
        current = files
        state = {"inputs": _fingerprints(current),
                 "benchmarks": digest([(b.label, b.text) for b in benchmarks]) if name == "decontaminate" else None}
        record = _once(config, name, state,
                       lambda: _filter_stage_record(config, name, settings, current, benchmarks))
        files = [SourceFile(**f) for f in record["outputs"]]
        records.append(record)
    for source in config.sources:
        inputs = [f for f in files if f.source == source.name]
        records.append(_once(config, f"tokenize-{source.name}", {"inputs": _fingerprints(inputs)},
                             lambda: _tokenize_record(config, source.name, inputs)))
    if not any(r["dataset"]["prefix"] for r in records if r["stage"] == "tokenize"):
        raise InputError("no source has documents left to tokenize; see the removed/ and rejected/ "
                         f"directories under {config.output}")
    return records
