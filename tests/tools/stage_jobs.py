"""Every stage and the pipeline as jobs over one mixed corpus, and their outputs in a comparable
form; shared by the executor tests (local workers, SLURM-style tasks, a real SLURM)."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path
from typing import Callable

import yaml

from tools.clean.stage import CleanSettings, clean_stage
from tools.decontaminate.benchmarks import BenchmarkSpec, load_benchmarks
from tools.decontaminate.stage import DecontaminationConfig, decontamination_job
from tools.dedup.exact import ExactDedup
from tools.dedup.labelled import build_labelled_set
from tools.dedup.minhash import MinHashDedup
from tools.executor.items import run_step
from tools.executor.job import Job, Step
from tools.executor.options import ExecutorConfig
from tools.executor.slurm import write_job_file
from tools.executor.task import main as task_main
from tools.pipeline.config import load_pipeline_config
from tools.pipeline.run import pipeline_job
from tools.stage.runner import StageConfig
from tools.stage.stages import corpus_stage_job, document_stage_job
from tools.tokenize.cli import tokenize_job
from tools.tokenize.shard import TokenizerSpec

SPLIT_BYTES = 24_000  # big.jsonl (~90 KB) becomes four byte-range shards


def write_mixed_corpus(root: Path) -> Path:
    """Near copies (labelled set), exact copies, a bad line, a gzip file, and one file large enough
    to be split into byte ranges; plus a benchmark holding one document. Returns the input dir."""
    labelled = build_labelled_set(originals=40, seed=5)
    documents = [{"id": d["id"], "text": d["text"]} for d in labelled.documents]
    documents += [{"id": f"exact-{d['id']}", "text": d["text"]} for d in documents[::9]]
    data = root / "in"
    data.mkdir(parents=True)
    lines = [json.dumps(d) + "\n" for d in documents]
    (data / "big.jsonl").write_text("".join(lines[::2]) + "{not json\n" + "".join(lines[1::4]))
    with gzip.open(data / "small.jsonl.gz", "wt") as handle:
        handle.write("".join(lines[3::4]))
    (root / "bench.jsonl").write_text(json.dumps({"id": "q1", "text": documents[5]["text"]}) + "\n")
    return data


def _config(root: Path, output: Path, workers: int) -> StageConfig:
    return StageConfig((str(root / "in"),), output, workers=workers, progress=False, split_bytes=SPLIT_BYTES)


def _benchmark(root: Path) -> list:
    return load_benchmarks([BenchmarkSpec.parse(f"bench={root / 'bench.jsonl'}")])


def pipeline_yaml(root: Path, workers: int) -> Path:
    path = root / f"pipeline-{workers}.yaml"
    path.write_text(yaml.safe_dump({
        "workers": workers, "split_bytes": SPLIT_BYTES,
        "sources": [{"name": "big", "inputs": [str(root / "in" / "big.jsonl")], "weight": 0.5},
                    {"name": "small", "inputs": [str(root / "in" / "small.jsonl.gz")], "weight": 0.5}],
        "stages": {"clean": {"quality_filters": False}, "exact_dedup": {}, "fuzzy_dedup": {},
                   "decontaminate": {"benchmarks": [f"bench={root / 'bench.jsonl'}"], "mode": "drop-document"},
                   "tokenize": {}}}))
    return path


JOBS: dict[str, Callable[[Path, Path, int, int], Job]] = {
    "clean": lambda root, out, workers, tasks: document_stage_job(
        clean_stage(CleanSettings(quality=())), _config(root, out, workers)),
    "dedup-exact": lambda root, out, workers, tasks: corpus_stage_job(ExactDedup(), _config(root, out, workers), tasks),
    "dedup-minhash": lambda root, out, workers, tasks: corpus_stage_job(MinHashDedup(), _config(root, out, workers),
                                                                        tasks),
    "decontaminate": lambda root, out, workers, tasks: decontamination_job(
        _benchmark(root), DecontaminationConfig(("bench",)), _config(root, out, workers)),
    "tokenize": lambda root, out, workers, tasks: tokenize_job(_config(root, out, workers), TokenizerSpec(),
                                                               "text_document"),
    "pipeline": lambda root, out, workers, tasks: pipeline_job(
        load_pipeline_config(pipeline_yaml(root, workers), str(out), progress=False),
        ExecutorConfig("local", tasks, workers, False)),
}
STAGE_ARGS = {  # the same jobs as qwen-data command lines (without --input/--output)
    "clean": ["clean", "--no-quality-filters"],
    "dedup-exact": ["dedup", "--method", "exact"],
    "dedup-minhash": ["dedup", "--method", "minhash"],
    "decontaminate": ["decontaminate", "--benchmark", "bench=BENCH"],
    "tokenize": ["tokenize"],
}


_IN_OUTPUT = re.compile(r'"OUTPUT(/[^":]*?)-[0-9a-f]{8}(\.jsonl)')


def sorted_lines(directory: Path, output: Path) -> list[str]:
    """Every line of every JSONL file under ``directory``, sorted by the record's id. Paths inside
    ``output`` (a pipeline stage reads the stage before's output) are written OUTPUT/..., without
    the hash of the absolute path that shard names carry."""
    lines = [_IN_OUTPUT.sub(r'"OUTPUT\1\2', line.replace(str(output), "OUTPUT"))
             for path in sorted(directory.rglob("*.jsonl")) for line in path.read_text().splitlines()]
    return sorted(lines, key=lambda line: (json.loads(line).get("id", ""), line))


def outputs(output: Path) -> dict[str, object]:
    """What a run produced, independent of how it was split: kept and removed records sorted by id
    (for the pipeline, of every stage), and the tokenized datasets' bytes."""
    found: dict[str, object] = {}
    for kept in sorted(output.rglob("kept")):
        found[str(kept.relative_to(output))] = sorted_lines(kept, output)
        found[str((kept.parent / "removed").relative_to(output))] = sorted_lines(kept.parent / "removed", output)
    for dataset in sorted(output.rglob("text_document.*")):
        found[str(dataset.relative_to(output))] = dataset.read_bytes()
    return found


def run_as_tasks(job: Job, tasks: int, before: Callable[[Step], None] | None = None) -> list[int]:
    """What the SLURM backend runs, without a scheduler: the prologue here, the pickled job, then
    each step's tasks (one after another) through the task entry point; ``before(step)`` is called
    before each step. Returns the exit codes, up to the first failure."""
    for step in job.prologue:
        run_step(step, 1, False)
    job_file = write_job_file(job, Path(job.output) / "slurm")
    codes = []
    for index, step in enumerate(job.steps):
        if before:
            before(step)
        for task in range(1 if step.single else tasks):
            codes.append(task_main([str(job_file), str(index), "--tasks", str(tasks), "--task", str(task)]))
            if codes[-1]:
                return codes
    return codes
