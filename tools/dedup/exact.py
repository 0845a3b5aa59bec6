"""Exact dedup: normalize, hash to 128 bits, keep one document per hash."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import xxhash

from tools.dedup.index import CorpusIndex, save_shard_index
from tools.dedup.keep import KeepPolicy
from tools.stage import Document, Shard, StageConfig

_WHITESPACE = re.compile(r"\s+")
_DIGITS = re.compile(r"\d")
_PUNCTUATION = re.compile(r"[\W_]+")  # after NFKC; applied only with fold_punctuation
HASH_SCHEME = "xxh3_128 of the UTF-8 normalized text (seed 0)"


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
class ExactDedup:
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
        save_shard_index(work_dir, shard, lines, ids, hashes=hashes)
        return {"documents": len(lines)}

    def decide(self, shards: list[Shard], work_dir: Path, config: StageConfig):
        index = CorpusIndex(work_dir, shards, self.keep)
        hashes = index.concatenated("hashes").reshape(-1, 2)
        order = np.lexsort((index.priority, hashes[:, 1], hashes[:, 0]))
        ordered = hashes[order]
        same_as_previous = np.zeros(len(order), dtype=bool)
        same_as_previous[1:] = np.all(ordered[1:] == ordered[:-1], axis=1)
        # The first of each run of equal hashes (the highest priority) is kept.
        run_start = np.maximum.accumulate(np.where(same_as_previous, 0, np.arange(len(order))))
        removed = {int(order[i]): (int(order[run_start[i]]), {"hash": f"{ordered[i, 0]:016x}{ordered[i, 1]:016x}"})
                   for i in np.flatnonzero(same_as_previous)}
        groups = len(np.unique(run_start[same_as_previous]))
        extra = {"hash_scheme": HASH_SCHEME, "duplicate_groups": groups}
        return index.removals("exact_duplicate", removed), extra
