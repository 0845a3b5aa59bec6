"""Per-shard index files on disk and the corpus-wide view the merge step reads.

Each shard's index is ``<work>/index/<shard>.<array>.npy`` (``lines`` plus the method's arrays,
such as hashes or signatures) and ``<shard>.ids.json``. Arrays are memory-mapped when read, so the
merge step holds only what it is working on. A document's global number is its shard's offset plus
its position in that shard's arrays.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tools.dedup.keep import KeepPolicy
from tools.stage import Removal, Shard
from tools.stage.writer import write_json_atomic, write_npy_atomic


def _base(work_dir: Path, shard: Shard) -> Path:
    return Path(work_dir) / "index" / shard.name


def save_shard_index(work_dir: Path, shard: Shard, lines: list[int], ids: list[str], **arrays: np.ndarray) -> None:
    base = _base(work_dir, shard)
    for name, array in arrays.items():
        write_npy_atomic(base.with_name(f"{shard.name}.{name}.npy"), array)
    write_json_atomic(base.with_name(f"{shard.name}.ids.json"), ids)
    # lines last: its presence means the shard's index is complete.
    write_npy_atomic(base.with_name(f"{shard.name}.lines.npy"), np.asarray(lines, dtype=np.int64))


class CorpusIndex:
    """All shards' indexes, addressed by global document number."""

    def __init__(self, work_dir: Path, shards: list[Shard], policy: KeepPolicy):
        self.work_dir = Path(work_dir)
        self.shards = shards
        self.lines = [np.load(self._path(s, "lines")) for s in shards]
        self.offsets = np.concatenate(([0], np.cumsum([len(x) for x in self.lines]))).astype(np.int64)
        ranks = policy.shard_ranks(shards)
        self.priority = np.concatenate(
            [KeepPolicy.document_priority(ranks[s.index], lines) for s, lines in zip(shards, self.lines)]
            or [np.zeros(0, dtype=np.int64)])
        self._ids: dict[int, list[str]] = {}
        self._memmaps: dict[str, list[np.ndarray]] = {}

    def _path(self, shard: Shard, name: str) -> Path:
        return _base(self.work_dir, shard).with_name(f"{shard.name}.{name}.npy")

    @property
    def size(self) -> int:
        return int(self.offsets[-1])

    def array(self, shard_position: int, name: str) -> np.ndarray:
        return np.load(self._path(self.shards[shard_position], name), mmap_mode="r")

    def concatenated(self, name: str) -> np.ndarray:
        return np.concatenate([self.array(i, name) for i in range(len(self.shards))])

    def rows(self, name: str, documents: np.ndarray) -> np.ndarray:
        """Rows of a per-document 2-D array for the given global document numbers."""
        arrays = self._memmaps.setdefault(name, [self.array(i, name) for i in range(len(self.shards))])
        shard_of = np.searchsorted(self.offsets, documents, side="right") - 1
        out = np.empty((len(documents), arrays[0].shape[1]), dtype=arrays[0].dtype)
        for position in np.unique(shard_of):
            mask = shard_of == position
            out[mask] = arrays[position][documents[mask] - self.offsets[position]]
        return out

    def locate(self, document: int) -> tuple[Shard, int, str]:
        """(shard, line, id) of a global document number."""
        position = int(np.searchsorted(self.offsets, document, side="right") - 1)
        shard = self.shards[position]
        if position not in self._ids:
            path = _base(self.work_dir, shard).with_name(f"{shard.name}.ids.json")
            self._ids[position] = json.loads(path.read_text(encoding="utf-8"))
        row = document - int(self.offsets[position])
        return shard, int(self.lines[position][row]), self._ids[position][row]

    def removals(self, reason: str, removed: dict[int, tuple[int, dict]]) -> dict[int, dict[int, Removal]]:
        """``{shard index: {line: Removal}}`` from ``{document: (kept partner, details)}``; the
        details gain the partner's id and location."""
        result: dict[int, dict[int, Removal]] = {}
        for document, (partner, details) in removed.items():
            shard, line, _ = self.locate(document)
            partner_shard, partner_line, partner_id = self.locate(partner)
            result.setdefault(shard.index, {})[line] = Removal(
                reason, {"partner_id": partner_id, "partner_source": f"{partner_shard.path}:{partner_line}", **details})
        return result
