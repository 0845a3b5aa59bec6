"""Shards, completion markers, and running a per-shard task over a process pool.

A shard is one input file. A task runs on one shard inside a worker process and returns a small
JSON-serializable result; the worker then writes a completion marker holding that result and the
file's fingerprint (path, size, mtime). A rerun skips every shard whose marker matches, so a crashed
or killed run resumes where it stopped and ends with the same outputs as an uninterrupted one.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import sys
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from tqdm import tqdm

from tools.stage import progress as progress_counter
from tools.stage.reader import SUPPORTED_SUFFIXES, InputError, RecordParser, expand_inputs
from tools.stage.writer import write_json_atomic


PROGRESS_INTERVAL_S = 0.5


class RunConflict(InputError):
    """The output directory holds a run with other parameters; resuming it would mix results."""


@dataclass(frozen=True)
class StageConfig:
    """The options every stage shares (see ``tools.stage.cli.add_stage_arguments``)."""

    inputs: tuple[str, ...]
    output: Path
    text_field: str = "text"
    id_field: str = "id"
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    progress: bool = True

    @property
    def parser(self) -> RecordParser:
        return RecordParser(self.text_field, self.id_field)

    def resume_key(self) -> dict[str, Any]:
        """What must match for a rerun to reuse finished shards (workers and progress may change)."""
        return {"inputs": list(self.inputs), "text_field": self.text_field, "id_field": self.id_field}


@dataclass(frozen=True)
class Shard:
    index: int
    path: str
    corpus: int

    @property
    def name(self) -> str:
        base = os.path.basename(self.path)
        for suffix in SUPPORTED_SUFFIXES:
            base = base.removesuffix(suffix)
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", base)
        return f"{self.index:05d}-{stem}"

    def fingerprint(self) -> dict[str, Any]:
        try:
            stat = os.stat(self.path)
        except OSError as exc:
            return {"path": self.path, "error": str(exc)}
        return {"path": self.path, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def list_shards(config: StageConfig) -> list[Shard]:
    return [Shard(i, f.path, f.corpus) for i, f in enumerate(expand_inputs(config.inputs))]


def claim_output(output: Path, stage: str, params: dict[str, Any]) -> None:
    """Record the run's parameters in ``output/.run.json``, or check them against a previous run."""
    record = json.loads(json.dumps({"stage": stage, "params": params}, default=str))
    path = Path(output) / ".run.json"
    if path.exists():
        previous = json.loads(path.read_text(encoding="utf-8"))
        if previous != record:
            changed = sorted(k for k in set(previous.get("params", {})) | set(record["params"])
                             if previous.get("params", {}).get(k) != record["params"].get(k))
            raise RunConflict(f"--output {output} holds a {previous.get('stage')} run with other parameters "
                              f"({', '.join(changed) or 'stage'}); use a fresh --output directory")
        return
    write_json_atomic(path, record)


@dataclass(frozen=True)
class Markers:
    """Completion markers of one phase: ``root/<phase>/<shard name>.json``."""

    root: Path
    phase: str

    def _path(self, shard: Shard) -> Path:
        return Path(self.root) / self.phase / f"{shard.name}.json"

    def result(self, shard: Shard) -> dict[str, Any] | None:
        path = self._path(shard)
        if not path.exists():
            return None
        marker = json.loads(path.read_text(encoding="utf-8"))
        return marker["result"] if marker.get("fingerprint") == shard.fingerprint() else None

    def mark(self, shard: Shard, result: dict[str, Any]) -> None:
        write_json_atomic(self._path(shard), {"shard": asdict(shard), "fingerprint": shard.fingerprint(),
                                              "result": result})


def _run_and_mark(task: Callable[[Shard], dict], markers: Markers, shard: Shard) -> tuple[Shard, dict]:
    result = task(shard)
    markers.mark(shard, result)
    return shard, result


@dataclass
class PhaseResult:
    results: dict[int, dict[str, Any]]  # shard index -> task result
    skipped: int  # shards finished by an earlier run


def run_shards(task: Callable[[Shard], dict], shards: list[Shard], markers: Markers, workers: int,
               desc: str, progress: bool = True) -> PhaseResult:
    """Run ``task`` (picklable) on every shard without a matching marker, ``workers`` at a time."""
    results: dict[int, dict[str, Any]] = {}
    todo = []
    for shard in shards:
        done = markers.result(shard)
        if done is None:
            todo.append(shard)
        else:
            results[shard.index] = done
    skipped = len(shards) - len(todo)
    if skipped:
        print(f"{desc}: {skipped} of {len(shards)} shards finished earlier, skipped", file=sys.stderr)
    bar = tqdm(total=len(todo), desc=desc, unit="shard", disable=not progress or not todo, file=sys.stderr)
    with bar:
        def finish(shard: Shard, result: dict) -> None:
            results[shard.index] = result
            bar.update(1)

        if workers <= 1 or len(todo) <= 1:
            for shard in todo:
                finish(*_run_and_mark(task, markers, shard))
                bar.set_postfix(docs=sum(int(r.get("in", r.get("documents", 0))) for r in results.values()))
        else:
            # fork: stages defined anywhere (a test, a notebook) reach the workers without being
            # importable; the parent holds no locks that the workers use.
            context = multiprocessing.get_context("fork")
            read = context.Value("q", 0)
            with ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=context,
                                     initializer=progress_counter.install, initargs=(read,)) as pool:
                pending = {pool.submit(_run_and_mark, task, markers, shard) for shard in todo}
                while pending:
                    finished, pending = wait(pending, timeout=PROGRESS_INTERVAL_S, return_when=FIRST_COMPLETED)
                    for future in finished:
                        finish(*future.result())
                    bar.set_postfix(docs_read=read.value)
    return PhaseResult(results, skipped)
