"""Fuzzy dedup: datasketch MinHash signatures, LSH bands, candidate pairs verified by exact Jaccard,
connected components and deterministic keepers, every step split over ``--tasks`` partitions.

Steps after the per-shard index (see each module):

- buckets (``buckets``): per (band, hash range): candidate pairs, verified;
- components 1 and 2 (``components``): per range of documents: component labels;
- route (``components``): final labels; each edge to its component's partition;
- resolve (``clusters``): per component partition: who is kept, who is removed and why.

Index (per shard): each document's shingle set (sorted unique 32-bit hashes) in
``<shard>.shingles.bin`` with offsets, its MinHash signature's band hashes sorted per band, and
with ``--verification signature`` the signatures themselves instead of the shingle sets.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from functools import cached_property
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from foundation.atomic_write import binary_file_atomic
from tools.dedup.buckets import BucketWork
from tools.dedup.clusters import REPORTED_CLUSTERS, ResolveWork
from tools.dedup.components import ComponentsWork, RouteWork
from tools.dedup.index import corpus_layout, index_path, merge_remedy, save_shard_index
from tools.dedup.keep import KeepPolicy
from tools.dedup.lsh import Banding
from tools.dedup.partitions import partition_items
from tools.dedup.removals import RemovalTables
from tools.dedup.shingles import HASH_SCHEME, Signer
from tools.executor.job import Step
from tools.executor.markers import Markers
from tools.stage import Document, Removal, Shard
from tools.stage.plan import StageRun
from tools.stage.settings import allowed, check_settings
from tools.stage.stages import CorpusJob

VERIFICATIONS = ("exact", "signature")


@dataclass(frozen=True)
class MinHashSettings:
    threshold: float = field(default=0.8, metadata=allowed(low=0, high=1, low_open=True))
    # candidate probability wanted at the threshold
    target_recall: float = field(default=0.999, metadata=allowed(low=0, high=1, low_open=True))
    num_perm: int = field(default=128, metadata=allowed(low=2))
    seed: int = field(default=1, metadata=allowed(low=0))
    word_ngram: int = field(default=5, metadata=allowed(low=1))
    char_ngram: int = field(default=5, metadata=allowed(low=1))
    # exact: Jaccard of the shingle sets; signature: the MinHash estimate (faster, less accurate)
    verification: str = field(default="exact", metadata=allowed(choices=VERIFICATIONS))
    # larger buckets contribute chained pairs only, not all pairs
    max_bucket: int = field(default=64, metadata=allowed(low=2))
    max_cluster: int = field(default=1000, metadata=allowed(low=1))  # clusters above this size are reported

    def __post_init__(self) -> None:
        check_settings(self)


@dataclass(frozen=True)
class MinHashDedup(CorpusJob):
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
        signer, exact = self.signer, self.settings.verification == "exact"
        lines, ids, signatures, counts = [], [], [], [0]
        seen = 0
        target = index_path(work_dir, shard, "shingles", ".bin")
        with binary_file_atomic(target) if exact else contextlib.nullcontext() as shingles:
            for doc in documents:
                seen += 1
                found = signer.shingle_set(doc.text)
                if not len(found):  # no tokens: nothing to compare, the document is kept
                    continue
                lines.append(doc.line)
                ids.append(doc.id)
                signatures.append(signer.signature(found))
                if exact:
                    shingles.write(found.tobytes())
                    counts.append(len(found))
        matrix = np.array(signatures, dtype=np.uint32).reshape(len(signatures), self.settings.num_perm)
        bands = self.banding.band_hashes(matrix)
        order = np.argsort(bands, axis=1, kind="stable")
        arrays = {"band_sorted": np.take_along_axis(bands, order, axis=1), "band_rows": order.astype(np.int64)}
        if exact:
            arrays["shingle_offsets"] = np.cumsum(counts, dtype=np.int64)
        else:
            arrays["signatures"] = matrix
        save_shard_index(work_dir, shard, lines, ids, **arrays)
        return {"documents": seen, "indexed": len(lines)}

    def merge_steps(self, run: StageRun) -> list[Step]:
        def step(name: str, description: str, work) -> Step:
            return Step(f"{run.stage}.{name}", f"{run.stage} {description}", work, run.merge_dir / "markers" / name)

        return [step("buckets", f"buckets ({self.settings.verification} verification)", BucketWork(run, self)),
                step("components1", "components, round 1", ComponentsWork(run, self, 1)),
                step("components2", "components, round 2", ComponentsWork(run, self, 2)),
                step("route", "route", RouteWork(run, self)),
                step("resolve", "resolve", ResolveWork(run, self))]

    def tables(self, run: StageRun) -> RemovalTables:
        return RemovalTables(run.merge_dir / "removals", run.partitions, merge_remedy(run))

    def removals_digest(self, run: StageRun, shard: Shard) -> str:
        return self.tables(run).digest(shard.index)

    def shard_removals(self, run: StageRun, shard: Shard) -> dict[int, Removal]:
        return self.tables(run).removals(
            shard.index, corpus_layout(run, self.keep), "near_duplicate",
            lambda row: {"similarity": round(float(row["similarity"]), 4), "cluster_size": int(row["cluster_size"])})

    def summary(self, run: StageRun) -> dict[str, Any]:
        def results(step: str) -> list[dict[str, Any]]:
            markers = Markers(run.merge_dir / "markers" / step)
            return [markers.read(item)["result"] for item in markers_items(step)]

        def markers_items(step: str) -> list[str]:
            return BucketWork(run, self).items() if step == "buckets" else partition_items(run.partitions)

        buckets, route, resolve = results("buckets"), results("route"), results("resolve")
        largest = sorted((tuple(entry) for r in resolve for entry in r["largest"]), reverse=True)
        oversized = [{"size": size, "first_id": first} for size, first in largest if size > self.settings.max_cluster]
        if oversized:
            print(f"warning: {len(oversized)} clusters larger than {self.settings.max_cluster} documents "
                  f"(largest {oversized[0]['size']}); see manifest.json", flush=True)
        banding, s = self.banding, self.settings
        index = Markers(run.shard_markers("index"))
        return {
            "hash_scheme": HASH_SCHEME,
            "minhash": {"library": "datasketch", "version": metadata.version("datasketch"), "scheme": "affine32",
                        "num_perm": s.num_perm, "seed": s.seed},
            "lsh": {"bands": banding.bands, "rows": banding.rows, "curve": banding.curve().splitlines()},
            "verification": s.verification,
            "candidate_pairs": sum(r["candidates"] for r in buckets),  # a pair sharing k bands counts k times
            "verified_pairs": sum(r["edges"] for r in route),
            "pending_label_pairs": route[0]["pending_pairs"] if route else 0,
            "indexed_documents": sum(index.read(shard.name)["result"]["indexed"] for shard in run.plan().shards),
            "clusters": sum(r["clusters"] for r in resolve),
            "largest_cluster": largest[0][0] if largest else 0,
            "oversized_buckets": sum(r["oversized_buckets"] for r in buckets),
            "oversized_clusters": oversized[:REPORTED_CLUSTERS],
        }
