"""How the merge steps split their work: items named ``p0000``.., each one a range of 64-bit hash
values (hash-prefix partitions) or of global document numbers (component partitions)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from tools.dedup.index import CorpusLayout, corpus_layout
from tools.dedup.shingles import splitmix64
from tools.stage.plan import StageRun

_HASH_SPACE = 1 << 64


def partition_items(count: int, prefix: str = "") -> list[str]:
    return [f"{prefix}p{number:04d}" for number in range(count)]


def partition_number(item: str) -> int:
    """The partition of an item name ending in ``p<number>``."""
    return int(item.rsplit("p", 1)[1])


def hash_bounds(part: int, count: int) -> tuple[int, int | None]:
    """[low, high) of partition ``part`` of ``count`` equal ranges of 64-bit values (high None: 2^64)."""
    high = _HASH_SPACE * (part + 1) // count
    return _HASH_SPACE * part // count, None if high == _HASH_SPACE else high


def sorted_slice(values: np.ndarray, low: int, high: int | None) -> tuple[int, int]:
    """[start, end) of the entries of sorted uint64 ``values`` in [low, high)."""
    start = int(np.searchsorted(values, np.uint64(low)))
    end = len(values) if high is None else int(np.searchsorted(values, np.uint64(high)))
    return start, end


def node_bounds(count: int, size: int) -> np.ndarray:
    """Start of each of ``count`` ranges of document numbers 0..size-1, plus ``size``."""
    return np.array([size * part // count for part in range(count + 1)], dtype=np.int64)


def node_partition(nodes: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    return np.searchsorted(bounds, nodes, side="right") - 1


def spread(values: np.ndarray, count: int) -> np.ndarray:
    """A partition for each value, hashed so that neighbouring values land apart."""
    return (splitmix64(values.astype(np.uint64)) % np.uint64(count)).astype(np.int64)


@dataclass(frozen=True)
class PartitionWork:
    """Base of a merge step's work: one item per partition, each valid while the indexed corpus,
    the settings and the partition count are unchanged."""

    stage_run: StageRun
    stage: Any  # the dedup stage (its ``keep`` policy orders the corpus)
    unit: ClassVar[str] = "partition"

    def items(self) -> list[str]:
        return partition_items(self.stage_run.partitions)

    def key(self, item: str) -> dict[str, Any]:
        return {"corpus": self.layout().key}

    def layout(self) -> CorpusLayout:
        return corpus_layout(self.stage_run, self.stage.keep)
