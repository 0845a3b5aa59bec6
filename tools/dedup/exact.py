"""Exact dedup: normalize, hash to 128 bits, keep one document per hash.

Index (per shard): the hashes, sorted. Groups (per hash-prefix partition, ``--tasks`` of them):
each partition reads the slice of every shard's sorted hashes whose first 64 bits fall in its
range, orders each group of equal hashes by the keep policy and removes all but the first. No
task holds more than its partition of the corpus's hashes, and a partition's decisions do not
depend on the other partitions, so any partition count gives the same result.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import xxhash

from tools.dedup.index import corpus_layout, merge_remedy, save_shard_index
from tools.dedup.keep import KeepPolicy
from tools.dedup.partitions import PartitionWork, hash_bounds, partition_items, partition_number, sorted_slice
from tools.dedup.removals import RemovalTables, write_removals
from tools.executor.job import Step
from tools.executor.markers import Markers
from tools.stage import Document, Removal, Shard
from tools.stage.plan import StageRun
from tools.stage.stages import CorpusJob

_WHITESPACE = re.compile(r"\s+")
_DIGITS = re.compile(r"\d")
_PUNCTUATION = re.compile(r"[\W_]+")  # after NFKC; applied only with fold_punctuation
HASH_SCHEME = "xxh3_128 of the UTF-8 normalized text (seed 0)"
HASH_DETAILS = [("hash_high", np.uint64), ("hash_low", np.uint64)]


@dataclass(frozen=True)
class Normalization:
    """NFKC, case folding and whitespace collapsing always; punctuation and digits optionally."""

    fold_punctuation: bool = False
    fold_digits: bool = False

    def apply(self, text: str) -> str:
        text = unicodedata.normalize("NFKC", text).casefold()
        if self.fold_punctuation:
            text = _PUNCTUATION.sub(" ", text)
        if self.fold_digits:
            text = _DIGITS.sub("0", text)
        return _WHITESPACE.sub(" ", text).strip()


@dataclass(frozen=True)
class ExactDedup(CorpusJob):
    normalization: Normalization = field(default_factory=Normalization)
    keep: KeepPolicy = field(default_factory=KeepPolicy)
    name: str = "dedup-exact"
    libraries: tuple[str, ...] = ("xxhash",)

    def params(self) -> dict[str, Any]:
        return {"method": "exact", **asdict(self.normalization), "keep": self.keep.name,
                "source_priority": list(self.keep.patterns)}

    def index_shard(self, shard: Shard, documents: Iterator[Document], work_dir: Path) -> dict[str, Any]:
        lines, ids, digests = [], [], []
        for doc in documents:
            lines.append(doc.line)
            ids.append(doc.id)
            digests.append(xxhash.xxh3_128_digest(self.normalization.apply(doc.text).encode("utf-8")))
        hashes = np.frombuffer(b"".join(digests), dtype=np.uint64).reshape(-1, 2)
        order = np.lexsort((hashes[:, 1], hashes[:, 0]))
        save_shard_index(work_dir, shard, lines, ids, hashes_sorted=hashes[order], hash_rows=order.astype(np.int64))
        return {"documents": len(lines), "indexed": len(lines)}

    def merge_steps(self, run: StageRun) -> list[Step]:
        return [Step(f"{run.stage}.groups", f"{run.stage} groups", GroupsWork(run, self),
                     run.merge_dir / "markers" / "groups")]

    def tables(self, run: StageRun) -> RemovalTables:
        return RemovalTables(run.merge_dir / "removals", run.partitions, merge_remedy(run))

    def removals_digest(self, run: StageRun, shard: Shard) -> str:
        return self.tables(run).digest(shard.index)

    def shard_removals(self, run: StageRun, shard: Shard) -> dict[int, Removal]:
        return self.tables(run).removals(shard.index, corpus_layout(run, self.keep), "exact_duplicate",
                                          lambda row: {"hash": f"{row['hash_high']:016x}{row['hash_low']:016x}"})

    def summary(self, run: StageRun) -> dict[str, Any]:
        results = [Markers(run.merge_dir / "markers" / "groups").read(item)["result"]
                   for item in partition_items(run.partitions)]
        return {"hash_scheme": HASH_SCHEME, "duplicate_groups": sum(r["duplicate_groups"] for r in results)}


@dataclass(frozen=True)
class GroupsWork(PartitionWork):
    """One hash-prefix partition: its groups of equal hashes and their keep decisions."""

    def run(self, item: str) -> dict[str, Any]:
        layout = self.layout()
        low, high = hash_bounds(partition_number(item), self.stage_run.partitions)
        parts = []
        for position in range(len(layout.shards)):
            hashes = layout.array(position, "hashes_sorted")
            start, end = sorted_slice(hashes[:, 0], low, high)
            rows = np.asarray(layout.array(position, "hash_rows")[start:end])
            parts.append((np.asarray(hashes[start:end]), rows + layout.offsets[position]))
        hashes = np.concatenate([h for h, _ in parts]) if parts else np.zeros((0, 2), dtype=np.uint64)
        documents = np.concatenate([d for _, d in parts]) if parts else np.zeros(0, dtype=np.int64)
        priority = layout.priority(documents)
        order = np.lexsort((priority, hashes[:, 1], hashes[:, 0]))
        ordered = hashes[order]
        same_as_previous = np.zeros(len(order), dtype=bool)
        same_as_previous[1:] = np.all(ordered[1:] == ordered[:-1], axis=1)
        # The first of each run of equal hashes (the highest priority) is kept.
        run_start = np.maximum.accumulate(np.where(same_as_previous, 0, np.arange(len(order))))
        removed = order[same_as_previous]
        partner = order[run_start[same_as_previous]]
        shards, _ = layout.locate(documents[removed])
        partner_shards, partner_rows = layout.locate(documents[partner])
        lines = layout.gather("lines", documents[removed])
        write_removals(self.stage.tables(self.stage_run).path(partition_number(item)),
                       {"shard": shards, "line": lines, "partner_shard": partner_shards, "partner_row": partner_rows,
                        "hash_high": hashes[removed, 0], "hash_low": hashes[removed, 1]}, HASH_DETAILS)
        return {"duplicate_groups": int(len(np.unique(run_start[same_as_previous]))), "removed": int(len(removed))}
