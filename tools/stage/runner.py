"""Shards, completion markers, and running a per-shard task over a process pool.

A shard is one input file. Its name (``<stem>-<8 hex digits of a hash of its absolute path>``)
names every file the stages write for it, so it stays the same when other files are added to or
removed from an input directory. A task runs on one shard inside a worker process and returns a
small JSON-serializable result; the worker then writes a completion marker holding that result,
the file's fingerprint (path, size, mtime) and what else the result depended on (``depends``:
decisions made over the whole corpus). A rerun skips exactly the shards whose marker matches, so a
killed run resumes where it stopped and a changed input redoes only what it changed.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from tqdm import tqdm

from tools.stage.errors import StopSignal
from tools.stage.inputs import normalized
from tools.stage.pool import run_in_workers
from tools.stage.reader import RecordParser
from tools.stage.signals import raise_if_stopped
from tools.stage.streams import READ_SUFFIXES
from tools.stage.writer import write_json_atomic

PROGRESS_INTERVAL_S = 0.5
_IDENTITY_SUFFIX = re.compile(r"-[0-9a-f]{8}$")  # the hash an earlier stage appended to a name
_STEM_CHARS = 80


@dataclass(frozen=True)
class StageConfig:
    """The options every stage shares (see ``tools.stage.cli.add_stage_arguments``)."""

    inputs: tuple[str, ...]
    output: Path
    text_field: str = "text"
    id_field: str = "id"
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    progress: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs", tuple(normalized(str(i)) for i in self.inputs))
        object.__setattr__(self, "output", Path(self.output))

    @property
    def parser(self) -> RecordParser:
        return RecordParser(self.text_field, self.id_field)

    def resume_key(self) -> dict[str, Any]:
        """What must match for a rerun to reuse finished shards. The inputs are not part of it:
        shards are matched one by one, so added, removed or changed files are redone."""
        return {"text_field": self.text_field, "id_field": self.id_field}


def shard_name(path: str) -> str:
    base = os.path.basename(path)
    lowered = base.lower()
    suffix = next((s for s in sorted(READ_SUFFIXES, key=len, reverse=True) if lowered.endswith(s)), "")
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", base[:len(base) - len(suffix)])
    stem = _IDENTITY_SUFFIX.sub("", stem)[:_STEM_CHARS] or "shard"
    digest = hashlib.blake2b(os.path.abspath(path).encode("utf-8", "surrogateescape"), digest_size=4).hexdigest()
    return f"{stem}-{digest}"


@dataclass(frozen=True)
class Shard:
    index: int  # position in the input order (the keep order of dedup)
    path: str
    corpus: int  # index of the --input argument that listed it

    @property
    def name(self) -> str:
        return shard_name(self.path)

    def fingerprint(self) -> dict[str, Any]:
        return file_fingerprint(self.path)


def file_fingerprint(path: str) -> dict[str, Any]:
    """What changes when a file is rewritten: its size and modification time."""
    try:
        stat = os.stat(path)
    except OSError as exc:
        return {"path": path, "error": str(exc)}
    return {"path": path, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def digest(value: Any) -> str:
    """A short stable digest of a JSON-serializable value (for ``Markers.depends``)."""
    return hashlib.blake2b(json.dumps(value, sort_keys=True, default=str).encode(), digest_size=16).hexdigest()


@dataclass(frozen=True)
class Markers:
    """Completion markers of one phase: ``root/<phase>/<shard name>.json``. ``depends`` maps a
    shard name to a digest of what else its result depends on; a marker counts only when that
    matches too."""

    root: Path
    phase: str
    depends: dict[str, str] = field(default_factory=dict)

    def _path(self, shard: Shard) -> Path:
        return Path(self.root) / self.phase / f"{shard.name}.json"

    def result(self, shard: Shard) -> dict[str, Any] | None:
        path = self._path(shard)
        try:
            marker = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if marker.get("fingerprint") != shard.fingerprint() or marker.get("depends") != self.depends.get(shard.name, ""):
            return None
        return marker["result"]

    def mark(self, shard: Shard, result: dict[str, Any]) -> None:
        write_json_atomic(self._path(shard), {"shard": asdict(shard), "fingerprint": shard.fingerprint(),
                                              "depends": self.depends.get(shard.name, ""), "result": result})


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
    """Run ``task`` (picklable) on every shard without a matching marker, ``workers`` at a time.
    A ``StopSignal`` stops the workers and leaves with ``finished`` / ``total`` set on it."""
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

    def finish(shard: Shard, result: dict) -> None:
        results[shard.index] = result
        bar.update(1)

    try:
        with bar:
            if workers <= 1 or len(todo) <= 1:
                for shard in todo:
                    finish(*_run_and_mark(task, markers, shard))
                    raise_if_stopped()
                    bar.set_postfix(docs=sum(int(r.get("in", r.get("documents", 0))) for r in results.values()))
            else:
                run_in_workers(functools.partial(_run_and_mark, task, markers), todo, workers,
                               on_result=lambda done: finish(*done),
                               on_wait=lambda read: bar.set_postfix(docs_read=read), wait_s=PROGRESS_INTERVAL_S)
    except StopSignal as stop:
        stop.finished, stop.total = len(results), len(shards)
        raise
    return PhaseResult(results, skipped)
