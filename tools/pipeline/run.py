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

from tools.executor.job import Job, Step
from tools.executor.options import ExecutorConfig
from tools.pipeline.config import PipelineConfig
from tools.pipeline.records import (SOURCES_RECORD, RecordWork, SummaryWork, announced, record_path,
                                    summary_text)
from foundation.atomic_write import write_json_atomic
from foundation.records.split import DEFAULT_SPLIT_BYTES
from tools.stage.errors import InputError
from tools.stage.inputs import list_inputs
from tools.stage.runner import StageConfig
from tools.stage.stages import PipelineStage
from tools.stage.startup import check_output, check_text_field

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


def _with_record(stage: PipelineStage, kind: str, key: str, output: Path, stage_config: StageConfig,
                 partitions: int, source: str | None = None) -> list[Step]:
    """The stage's steps, its plan announcing it, and its record after them."""
    job = stage.job(stage_config, partitions)
    depends = stage.depends()
    [plan] = job.prologue
    record = Step(f"{key}.record", f"pipeline {key} record",
                  RecordWork(key, str(output), stage_config, depends, kind, source),
                  output / ".work" / "steps" / f"{key}.record", single=True)
    return [announced(plan, key, output, stage_config, depends), *job.steps, record]


def pipeline_job(config: PipelineConfig, executor: ExecutorConfig) -> Job:
    """Checks everything, records the sources' files; returns the job (nothing has run yet)."""
    check_output(config.output)
    files = _sources(config)
    check_text_field([f["path"] for f in files], config.text_field)
    for stage in config.stages.values():
        stage.depends()  # loads what the stage depends on (decontaminate: the benchmarks), one line if it cannot
    config.tokenize.tokenizer.check()
    _claim(config)
    write_json_atomic(config.output / SOURCES_RECORD, {"outputs": files})
    common = {"text_field": config.text_field, "id_field": config.id_field, "workers": config.workers,
              "progress": config.progress, "split_bytes": config.split_bytes}
    steps: list[Step] = []
    previous = config.output / SOURCES_RECORD
    for name, stage in config.stages.items():
        stage_config = StageConfig((), config.output / name, inputs_record=str(previous), **common)
        steps += _with_record(stage, name, name, config.output, stage_config, executor.partitions())
        previous = record_path(config.output, name)
    for source in config.sources:  # one dataset per source, blended by qwen-train
        stage_config = StageConfig((), config.output / "tokenize" / source.name, inputs_record=str(previous),
                                   inputs_source=source.name, **common)
        steps += _with_record(config.tokenize, "tokenize", f"tokenize-{source.name}", config.output, stage_config,
                              executor.partitions(), source.name)
    keys = (*config.stages, *(f"tokenize-{source.name}" for source in config.sources))
    summary = Step("pipeline.summary", "pipeline summary", SummaryWork(config, keys),
                   config.output / ".work" / "steps" / "summary", single=True)
    # The first stage plans where the job is started: its checks report there, not in a log.
    return Job("qwen-data pipeline", config.output, (steps[0],), (*steps[1:], summary),
               functools.partial(summary_text, config.output))
