"""Per-shard index files on disk, and the corpus-wide view every merge step reads.

Each shard's index is ``<work>/index/<shard>.<array>.npy`` (``lines`` plus the method's arrays)
and its document ids as ``<shard>.ids.bin`` (UTF-8, concatenated) with ``<shard>.id_offsets.npy``.
Everything is memory-mapped when read, so a merge step touches only the slices it works on, and
a partner's id is looked up without loading a whole shard's ids. A document's global number is its
shard's offset plus its row in that shard's arrays.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from foundation.atomic_write import write_bytes_atomic, write_npy_atomic
from tools.dedup.keep import KeepPolicy
from tools.dedup.sorted_file import CorruptFile, SortedFile
from tools.executor.markers import Markers
from tools.stage.errors import InputError
from tools.stage.plan import StageRun
from tools.stage.runner import Shard, digest

INDEX_DIR = "index"



def load_array(path: Path, remedy: str, mmap: bool = True) -> np.ndarray:
    """``np.load``; an unreadable file is one line naming it and what to do."""
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except FileNotFoundError:
        raise CorruptFile(f"{path}: missing; {remedy}") from None
    except (OSError, ValueError, EOFError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise CorruptFile(f"{path}: unreadable ({reason}); {remedy}") from None


def index_path(work_dir: Path, shard: Shard, name: str, suffix: str = ".npy") -> Path:
    return Path(work_dir) / INDEX_DIR / f"{shard.name}.{name}{suffix}"


def save_shard_index(work_dir: Path, shard: Shard, lines: list[int], ids: list[str], **arrays: np.ndarray) -> None:
    for name, array in arrays.items():
        write_npy_atomic(index_path(work_dir, shard, name), array)
    encoded = [doc_id.encode("utf-8", "surrogatepass") for doc_id in ids]
    write_bytes_atomic(index_path(work_dir, shard, "ids", ".bin"), b"".join(encoded))
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(e) for e in encoded], out=offsets[1:])
    write_npy_atomic(index_path(work_dir, shard, "id_offsets"), offsets)
    write_npy_atomic(index_path(work_dir, shard, "lines"), np.asarray(lines, dtype=np.int64))


class _Indexed:
    """What the index markers say about the corpus: read once per process and plan."""

    def __init__(self, run: StageRun, keep: KeepPolicy):
        self.shards = run.plan().shards
        markers = Markers(run.shard_markers("index"))
        records = [markers.read(shard.name) for shard in self.shards]
        missing = [shard.label for shard, record in zip(self.shards, records) if record is None]
        if missing:
            raise InputError(f"{len(missing)} of {len(self.shards)} shards are not indexed yet (first: {missing[0]}); "
                             "rerun the same command")
        counts = [int(record["result"]["indexed"]) for record in records]
        self.offsets = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
        self.ranks = np.array([rank for _, rank in sorted(keep.shard_ranks(self.shards).items())], dtype=np.int64)
        # What every merge result depends on: the indexed files, the settings, the partition count.
        self.key = digest([[record["key"] for record in records], run.params, run.partitions])


class CorpusLayout:
    """The indexed corpus as a merge item sees it: the plan's shards, each one's indexed
    documents, global document numbers, keep priorities and ids. The index files it maps stay
    mapped while the layout lives, so an item that drops its layout leaves nothing mapped."""

    def __init__(self, run: StageRun, indexed: _Indexed):
        self.run = run
        self.shards, self.offsets, self.ranks, self.key = indexed.shards, indexed.offsets, indexed.ranks, indexed.key
        self._arrays: dict[tuple[int, str], np.ndarray] = {}
        self._files: dict[tuple[int, str], Any] = {}
        self._sorted: dict[tuple[int, str], SortedFile] = {}

    @property
    def size(self) -> int:
        return int(self.offsets[-1])

    def count(self, position: int) -> int:
        return int(self.offsets[position + 1] - self.offsets[position])

    def array(self, position: int, name: str) -> np.ndarray:
        cached = self._arrays.get((position, name))
        if cached is None:
            path = index_path(self.run.work_dir, self.shards[position], name)
            cached = self._arrays[(position, name)] = load_array(path, self._index_remedy(position))
        return cached

    def locate(self, documents: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(shard position, row) of global document numbers."""
        positions = np.searchsorted(self.offsets, documents, side="right") - 1
        return positions, documents - self.offsets[positions]

    def gather(self, name: str, documents: np.ndarray) -> np.ndarray:
        """Rows (or elements) of a per-document array for global document numbers."""
        positions, rows = self.locate(np.asarray(documents, dtype=np.int64))
        first = self.array(0, name) if self.shards else np.zeros(0)
        out = np.empty((len(rows), *first.shape[1:]), dtype=first.dtype)
        for position in np.unique(positions).tolist():
            mask = positions == position
            out[mask] = self.array(position, name)[rows[mask]]
        return out

    def priority(self, documents: np.ndarray) -> np.ndarray:
        """Keep priority of global document numbers: lower is kept first."""
        positions, _ = self.locate(np.asarray(documents, dtype=np.int64))
        return KeepPolicy.document_priority(self.ranks[positions], self.gather("lines", documents))

    def binary(self, position: int, name: str, dtype: type) -> np.ndarray:
        """A raw ``<shard>.<name>.bin`` array (written piece by piece while indexing)."""
        cached = self._arrays.get((position, name + ".bin"))
        if cached is None:
            path = index_path(self.run.work_dir, self.shards[position], name, ".bin")
            try:
                size = path.stat().st_size
            except OSError:
                raise CorruptFile(f"{path}: missing; {self._index_remedy(position)}") from None
            cached = np.memmap(path, dtype=dtype, mode="r") if size else np.zeros(0, dtype=dtype)
            self._arrays[(position, name + ".bin")] = cached
        return cached

    def sorted_file(self, position: int, name: str) -> SortedFile:
        """A shard's index array, read slice by slice (``sorted_file``), not mapped."""
        cached = self._sorted.get((position, name))
        if cached is None:
            path = index_path(self.run.work_dir, self.shards[position], name)
            cached = self._sorted[(position, name)] = SortedFile(path, self._index_remedy(position))
        return cached

    def binary_pieces(self, position: int, name: str, dtype: type, bounds: list[tuple[int, int]]) -> list[np.ndarray]:
        """Pieces ``[start, end)`` of a raw ``<shard>.<name>.bin`` array, read rather than mapped:
        an item then holds what it reads. Mapped, each piece would also bring the pages the kernel
        maps around it (fault-around), so the resident set grew with the number of shards touched."""
        handle = self._files.get((position, name))
        if handle is None:
            path = index_path(self.run.work_dir, self.shards[position], name, ".bin")
            try:
                handle = self._files[(position, name)] = open(path, "rb", buffering=0)
            except OSError:
                raise CorruptFile(f"{path}: missing; {self._index_remedy(position)}") from None
        size = np.dtype(dtype).itemsize
        pieces = []
        for start, end in bounds:
            data = os.pread(handle.fileno(), (end - start) * size, start * size)
            if len(data) != (end - start) * size:
                raise CorruptFile(f"{handle.name}: shorter than its offsets say; {self._index_remedy(position)}")
            pieces.append(np.frombuffer(data, dtype=dtype))
        return pieces

    def _index_remedy(self, position: int) -> str:
        marker = self.run.shard_markers("index") / f"{self.shards[position].name}.json"
        return f"delete {marker} and rerun to index the shard again"

    def doc_id(self, position: int, row: int) -> str:
        blob = self.binary(position, "ids", np.uint8)
        offsets = self.array(position, "id_offsets")
        return bytes(blob[offsets[row]:offsets[row + 1]]).decode("utf-8", "surrogatepass")

    def source(self, position: int, row: int) -> str:
        return f"{self.shards[position].path}:{int(self.array(position, 'lines')[row])}"


_INDEXED: dict[tuple, _Indexed] = {}


def corpus_layout(run: StageRun, keep: KeepPolicy) -> CorpusLayout:
    """A fresh layout (its own maps) over what the index markers say, which is read once per
    process and plan: every item of a merge step in one worker shares that."""
    marker_dir = run.shard_markers("index")
    stamp = (str(run.output), run.partitions, run.plan_path.stat().st_mtime_ns,
             max((p.stat().st_mtime_ns for p in marker_dir.glob("*.json")), default=0))
    if stamp not in _INDEXED:
        _INDEXED.clear()
        _INDEXED[stamp] = _Indexed(run, keep)
    return CorpusLayout(run, _INDEXED[stamp])


def merge_remedy(run: StageRun) -> str:
    return f"delete {run.merge_dir} and rerun to redo the merge"
