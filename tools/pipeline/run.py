"""The pipeline as one job: every stage's steps in order, each stage followed by its record, then
the summary; run by any executor (this machine, or SLURM arrays chained with afterok).

Everything that can be checked is checked before the first step: the output directory, the
sources' files, the text field, the benchmarks and the tokenizer. Each stage plans when it starts,
over what the stage before it kept (``records``), and every step skips the items whose completion
marker still matches, so a rerun redoes exactly what changed or was interrupted (the whole stage
for dedup and decontamination when their corpus-wide decisions changed). Sources stay separate
through every stage, so the tokenize step writes one dataset per source, blended by qwen-train
with the sources' weights.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from foundation.atomic_write import write_json_atomic
from foundation.records.split import DEFAULT_SPLIT_BYTES
from tools.decontaminate.benchmarks import BenchmarkError, BenchmarkItem, BenchmarkSpec, load_benchmarks
from tools.decontaminate.stage import decontamination_job
from tools.executor.job import Job, Step
from tools.executor.options import ExecutorConfig
from tools.pipeline.config import PipelineConfig
from tools.pipeline.records import (SOURCES_RECORD, RecordWork, SummaryWork, announced, record_path,
                                    summary_text)
from tools.stage.errors import InputError
from tools.stage.inputs import list_inputs
from tools.stage.runner import StageConfig, digest
from tools.stage.stages import corpus_stage_job, document_stage_job
from tools.stage.startup import check_output, check_text_field
from tools.tokenize.cli import tokenize_job

CONFIG_RECORD = "pipeline.json"


def _claim(config: PipelineConfig) -> None:
    """Refuse to resume an output directory that a pipeline with another configuration wrote."""
    record = {"stages": config.raw.get("stages"), "sources": config.raw.get("sources"),
              "text_field": config.text_field, "id_field": config.id_field}
    if config.split_bytes != DEFAULT_SPLIT_BYTES:  # another split makes other shards
        record["split_bytes"] = config.split_bytes
    path = config.output / CONFIG_RECORD
    if path.exists():
        if json.loads(path.read_text(encoding="utf-8")) != json.loads(json.dumps(record)):
            raise InputError(f"{config.output} holds a pipeline run with another configuration than {config.path}; "
                             "use a fresh output directory")
        return
    write_json_atomic(path, record)


def _sources(config: PipelineConfig) -> list[dict[str, str]]:
    files = []
    for source in config.sources:
        listing = list_inputs(source.inputs)
        listing.warn_skipped()
        files += [{"path": f.path, "source": source.name} for f in listing.files]
    return files


def _benchmarks(config: PipelineConfig) -> list[BenchmarkItem]:
    settings = config.stages.get("decontaminate")
    if settings is None:
        return []
    try:
        return load_benchmarks([BenchmarkSpec.parse(spec) for spec in settings.benchmarks])
    except BenchmarkError as error:
        raise InputError(str(error)) from None


def _stage_job(name: str, settings: Any, stage_config: StageConfig, benchmarks: list[BenchmarkItem],
               partitions: int) -> Job:
    if name == "clean":
        return document_stage_job(settings, stage_config)
    if name == "decontaminate":
        return decontamination_job(benchmarks, settings, stage_config)
    return corpus_stage_job(settings, stage_config, partitions)


def _with_record(job: Job, key: str, output: Path, stage_config: StageConfig, benchmarks: str | None,
                 stage: str, source: str | None = None) -> list[Step]:
    """The stage's steps, its plan announcing it, and its record after them."""
    [plan] = job.prologue
    record = Step(f"{key}.record", f"pipeline {key} record",
                  RecordWork(key, str(output), stage_config, benchmarks, stage, source),
                  output / ".work" / "steps" / f"{key}.record", single=True)
    return [announced(plan, key, output, stage_config, benchmarks), *job.steps, record]


def pipeline_job(config: PipelineConfig, executor: ExecutorConfig) -> Job:
    """Checks everything, records the sources' files; returns the job (nothing has run yet)."""
    check_output(config.output)
    files = _sources(config)
    check_text_field([f["path"] for f in files], config.text_field)
    benchmarks = _benchmarks(config)
    config.tokenize.tokenizer.check()
    _claim(config)
    write_json_atomic(config.output / SOURCES_RECORD, {"outputs": files})
    common = {"text_field": config.text_field, "id_field": config.id_field, "workers": config.workers,
              "progress": config.progress, "split_bytes": config.split_bytes}
    steps: list[Step] = []
    previous = config.output / SOURCES_RECORD
    for name, settings in config.stages.items():
        stage_config = StageConfig((), config.output / name, inputs_record=str(previous), **common)
        contents = digest([(b.label, b.text) for b in benchmarks]) if name == "decontaminate" else None
        job = _stage_job(name, settings, stage_config, benchmarks, executor.partitions())
        steps += _with_record(job, name, config.output, stage_config, contents, name)
        previous = record_path(config.output, name)
    for source in config.sources:
        stage_config = StageConfig((), config.output / "tokenize" / source.name, inputs_record=str(previous),
                                   inputs_source=source.name, **common)
        job = tokenize_job(stage_config, config.tokenize.tokenizer, config.tokenize.dataset_name)
        steps += _with_record(job, f"tokenize-{source.name}", config.output, stage_config, None, "tokenize",
                              source.name)
    keys = (*config.stages, *(f"tokenize-{source.name}" for source in config.sources))
    summary = Step("pipeline.summary", "pipeline summary", SummaryWork(config, keys),
                   config.output / ".work" / "steps" / "summary", single=True)
    # The first stage plans where the job is started: its checks report there, not in a log.
    return Job("qwen-data pipeline", config.output, (steps[0],), (*steps[1:], summary),
               functools.partial(summary_text, config.output))
