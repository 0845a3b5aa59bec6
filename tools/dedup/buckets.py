"""The buckets step of fuzzy dedup: candidate pairs from LSH band hashes, verified.

Items are (band, hash range) partitions: ``b003-p0001`` reads, from every shard's band hashes
(sorted per band at index time), the slice of band 3 whose values fall in range 1 of
``--tasks``. Documents with equal values share a bucket; every pair in a bucket is a candidate
(a bucket over ``max_bucket`` documents contributes only neighbouring pairs, in document order),
and each candidate is verified (``verify``) before it may link two documents. The verified edges
are written with both orientations, sorted, for the components step. A pair that shares several
bands is verified in each of them; the components step keeps it once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from foundation.atomic_write import write_npy_atomic
from tools.dedup.index import CorpusLayout
from tools.dedup.partitions import PartitionWork, hash_bounds, partition_items, partition_number
from tools.dedup.verify import estimated_jaccard, exact_jaccard
from tools.stage.plan import StageRun

EDGE = np.dtype([("a", np.int64), ("b", np.int64), ("sim", np.float64)])


def bucket_items(bands: int, partitions: int) -> list[str]:
    return [item for band in range(bands) for item in partition_items(partitions, f"b{band:03d}-")]


def edges_path(run: StageRun, item: str) -> Path:
    return run.merge_dir / "edges" / f"{item}.npy"


def bucket_pairs(hashes: np.ndarray, documents: np.ndarray, max_bucket: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(left, right, oversized buckets): candidate pairs with left < right."""
    order = np.lexsort((documents, hashes))
    ordered, members_all = hashes[order], documents[order]
    starts = np.concatenate(([0], np.flatnonzero(np.diff(ordered)) + 1)) if len(ordered) else np.zeros(0, np.int64)
    lengths = np.diff(np.append(starts, len(ordered)))
    pairs = [np.stack([members_all[starts[lengths == 2]], members_all[starts[lengths == 2] + 1]], axis=1)]
    oversized = 0
    for start, length in zip(starts[lengths > 2].tolist(), lengths[lengths > 2].tolist()):
        members = members_all[start:start + length]
        if length <= max_bucket:
            left, right = np.triu_indices(length, k=1)
            pairs.append(np.stack([members[left], members[right]], axis=1))
        else:
            oversized += 1
            pairs.append(np.stack([members[:-1], members[1:]], axis=1))
    found = np.concatenate(pairs) if pairs else np.zeros((0, 2), dtype=np.int64)
    return found[:, 0], found[:, 1], oversized


def _band_slice(layout: CorpusLayout, band: int, low: int, high: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(band hash, global document) of every indexed document whose hash of ``band`` is in range."""
    hashes, documents = [], []
    for position in range(len(layout.shards)):
        values = layout.sorted_file(position, "band_sorted")
        start = values.search(np.uint64(low), band)
        end = values.length if high is None else values.search(np.uint64(high), band)
        hashes.append(values.read(start, end, band))
        documents.append(layout.sorted_file(position, "band_rows").read(start, end, band) + layout.offsets[position])
    if not hashes:
        return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64)
    return np.concatenate(hashes), np.concatenate(documents)


@dataclass(frozen=True)
class BucketWork(PartitionWork):
    def items(self) -> list[str]:
        return bucket_items(self.stage.banding.bands, self.stage_run.partitions)

    def run(self, item: str) -> dict[str, Any]:
        settings = self.stage.settings
        layout = self.layout()
        band = int(item[1:4])
        hashes, documents = _band_slice(layout, band, *hash_bounds(partition_number(item), self.stage_run.partitions))
        left, right, oversized = bucket_pairs(hashes, documents, settings.max_bucket)
        if settings.verification == "exact":
            similarity = exact_jaccard(layout, left, right, settings.threshold)
        else:
            similarity = estimated_jaccard(layout, left, right)
        ok = similarity >= settings.threshold
        edges = np.empty(2 * int(ok.sum()), dtype=EDGE)
        edges["a"] = np.concatenate([left[ok], right[ok]])
        edges["b"] = np.concatenate([right[ok], left[ok]])
        edges["sim"] = np.tile(similarity[ok], 2)
        write_npy_atomic(edges_path(self.stage_run, item), edges[np.lexsort((edges["b"], edges["a"]))])
        return {"candidates": int(len(left)), "verified": int(ok.sum()), "oversized_buckets": oversized}
