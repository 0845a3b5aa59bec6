"""The n-gram index of the benchmark items: built once, saved, and loaded by every worker.

For each distinct n-gram of normalized words in any benchmark item it keeps the items it occurs in.
``matches`` finds, in a training document, every position whose n-gram is in the index (keys as a
sorted numpy array for a vectorized search, then an exact comparison of the word ids).
"""

from __future__ import annotations

import functools
import os
import pickle
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from foundation.atomic_write import write_bytes_atomic
from tools.decontaminate.benchmarks import BenchmarkItem
from tools.decontaminate.ngrams import ngram_keys, normalized_words, word_ids, word_spans


@dataclass(frozen=True)
class NgramMatch:
    """An indexed n-gram found in a document: its key, character span and benchmark items."""

    key: int
    start: int
    end: int
    items: tuple[int, ...]


@dataclass
class BenchmarkIndex:
    n: int
    items: list[BenchmarkItem]
    item_ngram_counts: list[int]
    vocabulary: dict[str, int]
    ngram_items: dict[int, tuple[int, ...]]  # key -> indices into ``items``
    ngram_ids: dict[int, tuple[int, ...]]  # key -> the word ids, for the exact comparison

    @classmethod
    def build(cls, items: list[BenchmarkItem], n: int = 13) -> "BenchmarkIndex":
        vocabulary: dict[str, int] = {}
        occurrences: dict[int, set[int]] = defaultdict(set)
        ngram_ids: dict[int, tuple[int, ...]] = {}
        counts = []
        for item_index, item in enumerate(items):
            words = normalized_words(item.text)
            for word in words:
                vocabulary.setdefault(word, len(vocabulary) + 1)
            ids = word_ids(words, vocabulary)
            keys = ngram_keys(ids, n)
            counts.append(len(set(keys.tolist())))
            for position, key in enumerate(keys.tolist()):
                window = tuple(ids[position:position + n].tolist())
                if ngram_ids.setdefault(key, window) != window:
                    raise RuntimeError(f"64-bit n-gram key collision inside the benchmarks (key {key})")
                occurrences[key].add(item_index)
        return cls(n, items, counts, vocabulary,
                   {key: tuple(sorted(found)) for key, found in occurrences.items()}, ngram_ids)

    def __post_init__(self) -> None:
        self._sorted_keys = np.array(sorted(self.ngram_items), dtype=np.uint64)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        del state["_sorted_keys"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.__post_init__()

    def save(self, path: Path) -> None:
        """Pickle to a temporary name, then rename: a worker never loads half an index."""
        write_bytes_atomic(path, pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL))

    def matches(self, text: str) -> list[NgramMatch]:
        """Every occurrence of an indexed n-gram in ``text``, in order of position."""
        ids = word_ids(normalized_words(text), self.vocabulary)
        if len(ids) < self.n or not len(self._sorted_keys):
            return []
        # Only windows made entirely of benchmark words can match; most windows of most text are not.
        unknown_before = np.concatenate(([0], np.cumsum(ids == 0)))
        candidates = np.flatnonzero(unknown_before[self.n:] == unknown_before[:-self.n])
        if not len(candidates):
            return []
        keys = ngram_keys(ids, self.n)[candidates]
        slots = np.searchsorted(self._sorted_keys, keys)
        slots[slots == len(self._sorted_keys)] = 0
        hits = np.flatnonzero(self._sorted_keys[slots] == keys)
        if not len(hits):
            return []
        spans = word_spans(text)
        found = []
        for position, key in zip(candidates[hits].tolist(), keys[hits].tolist()):
            window = tuple(ids[position:position + self.n].tolist())
            if self.ngram_ids.get(key) == window:
                found.append(NgramMatch(key, spans[position][0], spans[position + self.n - 1][1],
                                        self.ngram_items[key]))
        return found


def file_version(path: str) -> tuple[str, int, int]:
    """A cache key that changes when the file is rewritten."""
    stat = os.stat(path)
    return path, stat.st_mtime_ns, stat.st_size


@functools.lru_cache(maxsize=2)
def _unpickle(version: tuple[str, int, int]) -> BenchmarkIndex:
    with open(version[0], "rb") as handle:
        return pickle.load(handle)


def load_index(path: str) -> BenchmarkIndex:
    """Each worker process unpickles the index once, whatever number of shards it runs."""
    return _unpickle(file_version(path))
