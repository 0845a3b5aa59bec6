"""One stage's run over one output directory, and its plan: the shards every later step works on.

The plan step does the start-up checks (``startup``), lists and splits the inputs, claims the
output directory and removes what an earlier run left for files that are no longer inputs; it
writes ``OUTPUT/.work/plan.json``, which every later step (in this process, a worker or a SLURM
task on another machine) reads. Planning happens when the stage starts, so in a pipeline a stage
plans over what the stage before it wrote.
"""

from __future__ import annotations

import functools
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from foundation.atomic_write import write_json_atomic
from foundation.records.split import byte_ranges
from tools.executor.job import OneItem
from tools.stage.inputs import InputListing, list_inputs
from tools.stage.runner import Shard, StageConfig, file_fingerprint
from tools.stage.startup import MARKERS_DIR, check_output, check_text_field, claim_output, remove_stale

WORK_DIR = ".work"
PLAN_FILE = "plan.json"
MERGE_PREFIX = "merge-p"  # .work/merge-p<N>/: a corpus stage's merge outputs for N partitions


@dataclass(frozen=True)
class StagePlan:
    shards: list[Shard]
    skipped_files: list[str]  # files in input directories that are not read
    files: dict[str, dict[str, Any]]  # fingerprint of every input file when it was planned
    split_bytes: int
    planned_at: float  # when this run planned (its markers are newer; older ones are resumed work)

    def shard(self, name: str) -> Shard:
        return self._by_name[name]

    @functools.cached_property
    def _by_name(self) -> dict[str, Shard]:
        return {shard.name: shard for shard in self.shards}

    def to_json(self) -> dict[str, Any]:
        return {"shards": [s.to_json() for s in self.shards], "skipped_files": self.skipped_files,
                "files": self.files, "split_bytes": self.split_bytes, "planned_at": self.planned_at}

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> "StagePlan":
        return cls([Shard.from_json(s) for s in value["shards"]], value["skipped_files"], value["files"],
                   value["split_bytes"], value["planned_at"])


@functools.lru_cache(maxsize=4)
def _read_plan(path: str, mtime_ns: int) -> StagePlan:
    return StagePlan.from_json(json.loads(Path(path).read_text(encoding="utf-8")))


@dataclass(frozen=True)
class StageRun:
    """What every step of one stage's run needs; picklable, small (the plan is read from disk)."""

    stage: str  # the stage's name: dedup-minhash
    params: dict[str, Any]  # the stage's parameters; a rerun into the same output must match them
    libraries: tuple[str, ...]
    config: StageConfig
    partitions: int = 1  # hash partitions of a corpus stage's merge (the task count)

    @property
    def output(self) -> Path:
        return Path(self.config.output)

    @property
    def work_dir(self) -> Path:
        return self.output / WORK_DIR

    @property
    def merge_dir(self) -> Path:
        return self.work_dir / f"{MERGE_PREFIX}{self.partitions}"

    def shard_markers(self, step: str) -> Path:
        """Markers of a per-shard step (kept through reruns, pruned with the shards)."""
        return self.output / MARKERS_DIR / step

    def step_markers(self, step: str) -> Path:
        """Markers of any other step."""
        return self.work_dir / "steps" / step

    @property
    def plan_path(self) -> Path:
        return self.work_dir / PLAN_FILE

    def plan(self) -> StagePlan:
        path = self.plan_path
        return _read_plan(str(path), path.stat().st_mtime_ns)


def _shards(listing: InputListing, split_bytes: int, earlier: StagePlan | None) -> tuple[list[Shard], dict]:
    """One shard per file, or one per byte range of a large JSON Lines file; an earlier plan's
    ranges are reused while the file and the split size are unchanged (splitting reads the file)."""
    reuse: dict[str, list[Shard]] = {}
    if earlier is not None and earlier.split_bytes == split_bytes:
        for shard in earlier.shards:
            reuse.setdefault(shard.path, []).append(shard)
    shards: list[Shard] = []
    files = {}
    for found in listing.files:
        fingerprint = files[found.path] = file_fingerprint(found.path)
        if found.path in reuse and earlier.files.get(found.path) == fingerprint:
            ranges = [shard.byte_range for shard in reuse[found.path] if shard.byte_range is not None] or None
        else:
            ranges = byte_ranges(found.path, fingerprint["size"], split_bytes) if "size" in fingerprint else None
        if ranges is None:
            shards.append(Shard(len(shards), found.path, found.corpus))
        else:
            shards += [Shard(len(shards) + part, found.path, found.corpus, part, byte_range)
                       for part, byte_range in enumerate(ranges)]
    return shards, files


def prepare_run(run: StageRun) -> StagePlan:
    """Every start-up check, then the claim on the output directory, the stale-file cleanup and
    the plan on disk."""
    config = run.config
    check_output(config.output)
    listing = list_inputs(config.input_patterns())
    listing.warn_skipped()
    check_text_field([f.path for f in listing.files], config.text_field)
    claim_output(config.output, run.stage, {**run.params, **config.resume_key()})
    earlier = None
    if run.plan_path.exists():
        earlier = StagePlan.from_json(json.loads(run.plan_path.read_text(encoding="utf-8")))
    shards, files = _shards(listing, config.split_bytes, earlier)
    remove_stale(config.output, shards)
    for stale in run.work_dir.glob(f"{MERGE_PREFIX}*"):  # merge outputs for another partition count
        if stale != run.merge_dir:
            shutil.rmtree(stale)
    plan = StagePlan(shards, listing.skipped, files, config.split_bytes, time.time())
    write_json_atomic(run.plan_path, plan.to_json())
    return plan


@dataclass(frozen=True)
class PlanWork(OneItem):
    """The plan step."""

    stage_run: StageRun
    unit: ClassVar[str] = "plan"

    def run(self, item: str) -> dict[str, Any]:
        return {"shards": len(prepare_run(self.stage_run).shards)}


@dataclass(frozen=True)
class ShardWork:
    """Base of per-shard work: items are the plan's shard names."""

    stage_run: StageRun
    unit: ClassVar[str] = "shard"

    def items(self) -> list[str]:
        return [shard.name for shard in self.stage_run.plan().shards]

    def shard(self, item: str) -> Shard:
        return self.stage_run.plan().shard(item)

    def key(self, item: str) -> dict[str, Any]:
        return {"fingerprint": self.shard(item).fingerprint()}
