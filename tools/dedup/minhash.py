"""Fuzzy dedup: datasketch MinHash signatures, LSH banding on disk, verified pairs, clusters.

Index (per shard, in parallel or on many machines): signatures (documents x num_perm, uint32)
and band hashes (bands x documents, uint64) go to disk. Merge: one band at a time, documents with
equal band hashes become candidate pairs; each pair is verified by its estimated Jaccard (the
share of equal signature values) before it may link two documents.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from functools import cached_property
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from tqdm import tqdm

from tools.dedup.clusters import resolve
from tools.dedup.index import CorpusIndex, save_shard_index
from tools.dedup.keep import KeepPolicy
from tools.dedup.lsh import Banding
from tools.dedup.shingles import HASH_SCHEME, Signer
from tools.stage import Document, Shard, StageConfig
from tools.stage.settings import allowed, check_settings

VERIFY_CHUNK = 1 << 18  # pairs verified per step: bounds the gathered signature rows


@dataclass(frozen=True)
class MinHashSettings:
    threshold: float = field(default=0.8, metadata=allowed(low=0, high=1, low_open=True))
    # candidate probability wanted at the threshold
    target_recall: float = field(default=0.95, metadata=allowed(low=0, high=1, low_open=True))
    num_perm: int = field(default=128, metadata=allowed(low=2))
    seed: int = field(default=1, metadata=allowed(low=0))
    word_ngram: int = field(default=5, metadata=allowed(low=1))
    char_ngram: int = field(default=5, metadata=allowed(low=1))
    # larger buckets contribute chained pairs only, not all pairs
    max_bucket: int = field(default=64, metadata=allowed(low=2))
    max_cluster: int = field(default=1000, metadata=allowed(low=1))  # clusters above this size are reported

    def __post_init__(self) -> None:
        check_settings(self)


@dataclass(frozen=True)
class MinHashDedup:
    settings: MinHashSettings = field(default_factory=MinHashSettings)
    keep: KeepPolicy = field(default_factory=KeepPolicy)
    name: str = "dedup-minhash"
    libraries: tuple[str, ...] = ("datasketch",)

    @cached_property
    def banding(self) -> Banding:
        s = self.settings
        return Banding.choose(s.num_perm, s.threshold, s.target_recall)

    @property
    def signer(self) -> Signer:
        s = self.settings
        return Signer(s.num_perm, s.seed, s.word_ngram, s.char_ngram)

    def params(self) -> dict[str, Any]:
        banding = self.banding
        return {"method": "minhash", **self.settings.__dict__, "bands": banding.bands, "rows": banding.rows,
                "keep": self.keep.name, "source_priority": list(self.keep.patterns)}

    def index_shard(self, shard: Shard, documents: Iterator[Document], work_dir: Path) -> dict[str, Any]:
        signer, banding = self.signer, self.banding
        lines, ids, signatures = [], [], []
        seen = 0
        for doc in documents:
            seen += 1
            sketch = signer.minhash(doc.text)
            if sketch is not None:  # no tokens: nothing to compare, the document is kept
                lines.append(doc.line)
                ids.append(doc.id)
                signatures.append(sketch.hashvalues)
        matrix = np.array(signatures, dtype=np.uint32).reshape(len(signatures), self.settings.num_perm)
        save_shard_index(work_dir, shard, lines, ids, signatures=matrix, bands=banding.band_hashes(matrix))
        return {"documents": seen, "indexed": len(lines)}

    def _candidate_pairs(self, index: CorpusIndex, progress: bool) -> tuple[np.ndarray, int]:
        """Unique candidate pairs as keys ``left * size + right`` (left < right), and the number of
        buckets larger than ``max_bucket``."""
        size = index.size
        keys = np.zeros(0, dtype=np.uint64)
        oversized = 0
        for band in tqdm(range(self.banding.bands), desc="LSH bands", unit="band", disable=not progress,
                         file=sys.stderr):
            hashes = np.concatenate([index.array(i, "bands")[band] for i in range(len(index.shards))])
            order = np.argsort(hashes, kind="stable")  # stable: members stay in document order
            ordered = hashes[order]
            boundaries = np.flatnonzero(np.diff(ordered)) + 1
            starts = np.concatenate(([0], boundaries))
            lengths = np.diff(np.append(starts, len(ordered)))
            pairs = [np.stack([order[starts[lengths == 2]], order[starts[lengths == 2] + 1]], axis=1)]
            for start, length in zip(starts[lengths > 2].tolist(), lengths[lengths > 2].tolist()):
                members = order[start:start + length]
                if length <= self.settings.max_bucket:
                    left, right = np.triu_indices(length, k=1)
                    pairs.append(np.stack([members[left], members[right]], axis=1))
                else:
                    oversized += 1
                    pairs.append(np.stack([members[:-1], members[1:]], axis=1))
            band_pairs = np.concatenate(pairs).astype(np.uint64)
            keys = np.union1d(keys, band_pairs[:, 0] * np.uint64(size) + band_pairs[:, 1])
        return keys, oversized

    def _verify(self, index: CorpusIndex, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        size = np.uint64(index.size)
        left_parts, right_parts, sim_parts = [], [], []
        for start in range(0, len(keys), VERIFY_CHUNK):
            chunk = keys[start:start + VERIFY_CHUNK]
            left, right = (chunk // size).astype(np.int64), (chunk % size).astype(np.int64)
            similarity = np.mean(index.rows("signatures", left) == index.rows("signatures", right), axis=1)
            ok = similarity >= self.settings.threshold
            left_parts.append(left[ok])
            right_parts.append(right[ok])
            sim_parts.append(similarity[ok])
        if not left_parts:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
        return np.concatenate(left_parts), np.concatenate(right_parts), np.concatenate(sim_parts)

    def decide(self, shards: list[Shard], work_dir: Path, config: StageConfig):
        index = CorpusIndex(work_dir, shards, self.keep)
        keys, oversized_buckets = self._candidate_pairs(index, config.progress)
        left, right, similarity = self._verify(index, keys)
        resolution = resolve(left, right, similarity, index.priority)
        removed = {doc: (partner, {"similarity": round(sim, 4),
                                   "cluster_size": resolution.cluster_sizes[resolution.cluster_of[doc]]})
                   for doc, (partner, sim) in resolution.removed.items()}
        large = sorted(((size, root) for root, size in resolution.cluster_sizes.items()
                        if size > self.settings.max_cluster), reverse=True)
        banding = self.banding
        extra = {
            "hash_scheme": HASH_SCHEME,
            "minhash": {"library": "datasketch", "version": metadata.version("datasketch"), "scheme": "affine32",
                        "num_perm": self.settings.num_perm, "seed": self.settings.seed},
            "lsh": {"bands": banding.bands, "rows": banding.rows, "curve": banding.curve().splitlines()},
            "candidate_pairs": int(len(keys)),
            "verified_pairs": int(len(left)),
            "indexed_documents": index.size,
            "clusters": len(resolution.cluster_sizes),
            "largest_cluster": max(resolution.cluster_sizes.values(), default=0),
            "oversized_buckets": oversized_buckets,
            "oversized_clusters": [{"size": size, "first_id": index.locate(root)[2]} for size, root in large[:20]],
        }
        if large:
            print(f"warning: {len(large)} clusters larger than {self.settings.max_cluster} documents "
                  f"(largest {large[0][0]}); see manifest.json", flush=True)
        return index.removals("near_duplicate", removed), extra
