"""Checking candidate pairs: the exact Jaccard similarity of the two documents' shingle sets, or
(``--verification signature``) the MinHash estimate, the share of equal signature values.

The estimate's standard error at 128 permutations is sqrt(J(1-J)/128), about 0.035 near J = 0.8,
enough to turn true duplicates away at the threshold; the exact check has no such error. It is
batched: the shingle sets of a chunk of pairs are tagged with their pair's number, sorted together,
and the shingles each pair shares are counted from adjacent equal values. A size bound first drops
pairs that cannot reach the threshold (J <= smaller set / larger set), without reading shingles.
"""

from __future__ import annotations

import numpy as np

from tools.dedup.index import CorpusLayout

VALUES_PER_CHUNK = 1 << 22  # shingles sorted at once: bounds the memory of a verification batch


def shingle_counts(layout: CorpusLayout, documents: np.ndarray) -> np.ndarray:
    positions, rows = layout.locate(documents)
    counts = np.empty(len(documents), dtype=np.int64)
    for position in np.unique(positions).tolist():
        mask = positions == position
        offsets = layout.array(position, "shingle_offsets")
        counts[mask] = offsets[rows[mask] + 1] - offsets[rows[mask]]
    return counts


def _shingle_sets(layout: CorpusLayout, documents: np.ndarray) -> dict[int, np.ndarray]:
    positions, rows = layout.locate(documents)
    found = {}
    for position in np.unique(positions).tolist():
        mask = positions == position
        offsets = layout.array(position, "shingle_offsets")
        shard_rows = rows[mask]
        bounds = list(zip(offsets[shard_rows].tolist(), offsets[shard_rows + 1].tolist()))
        found.update(zip(documents[mask].tolist(), layout.binary_pieces(position, "shingles", np.uint32, bounds)))
    return found


def _intersections(left: list[np.ndarray], right: list[np.ndarray]) -> np.ndarray:
    """|left[i] & right[i]| for sorted unique uint32 arrays, in one sort."""
    sizes = np.array([len(a) + len(b) for a, b in zip(left, right)], dtype=np.int64)
    pair = np.repeat(np.arange(len(left), dtype=np.uint64), sizes)
    values = np.concatenate([part for a, b in zip(left, right) for part in (a, b)]).astype(np.uint64)
    keys = np.sort((pair << np.uint64(32)) | values)
    shared = keys[1:][keys[1:] == keys[:-1]] >> np.uint64(32)
    return np.bincount(shared.astype(np.int64), minlength=len(left))


def exact_jaccard(layout: CorpusLayout, left: np.ndarray, right: np.ndarray, threshold: float) -> np.ndarray:
    """Jaccard of each pair's shingle sets; 0 for pairs the size bound rules out."""
    similarity = np.zeros(len(left))
    left_sizes, right_sizes = shingle_counts(layout, left), shingle_counts(layout, right)
    possible = np.flatnonzero(np.minimum(left_sizes, right_sizes) >= threshold * np.maximum(left_sizes, right_sizes))
    totals = (left_sizes + right_sizes)[possible]
    start = 0
    while start < len(possible):
        end = start + max(1, int(np.searchsorted(np.cumsum(totals[start:]), VALUES_PER_CHUNK)))
        chunk = possible[start:end]
        sets = _shingle_sets(layout, np.unique(np.concatenate([left[chunk], right[chunk]])))
        shared = _intersections([sets[d] for d in left[chunk].tolist()], [sets[d] for d in right[chunk].tolist()])
        union = left_sizes[chunk] + right_sizes[chunk] - shared
        similarity[chunk] = shared / union
        start = end
    return similarity


def estimated_jaccard(layout: CorpusLayout, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """The share of equal MinHash values."""
    similarity = np.zeros(len(left))
    for start in range(0, len(left), 1 << 16):
        end = start + (1 << 16)
        equal = layout.gather("signatures", left[start:end]) == layout.gather("signatures", right[start:end])
        similarity[start:end] = equal.mean(axis=1)
    return similarity
