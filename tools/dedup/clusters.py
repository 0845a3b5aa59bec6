"""From verified similar pairs to keep/remove decisions.

Every removed document has a direct verified edge to a kept document (its named partner), so a
chain a~b~c never removes c because of an a it does not resemble. Clusters (connected components)
are still computed, to report their sizes.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Resolution:
    removed: dict[int, tuple[int, float]]  # document -> (kept partner, similarity)
    cluster_of: dict[int, int]  # document in any edge -> cluster representative
    cluster_sizes: dict[int, int]  # representative -> size


def _components(left: np.ndarray, right: np.ndarray) -> dict[int, int]:
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        root = x
        while parent.setdefault(root, root) != root:
            root = parent[root]
        while parent[x] != root:  # path compression
            parent[x], x = root, parent[x]
        return root

    for a, b in zip(left.tolist(), right.tolist()):
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return {x: find(x) for x in list(parent)}


def resolve(left: np.ndarray, right: np.ndarray, similarity: np.ndarray, priority: np.ndarray) -> Resolution:
    """``left``/``right``/``similarity``: verified pairs; ``priority[doc]``: lower is kept first.
    In priority order, a document is removed when one of its neighbours was kept (the most similar
    such neighbour becomes its partner), and kept otherwise."""
    neighbours: dict[int, list[tuple[int, float]]] = defaultdict(list)
    for a, b, s in zip(left.tolist(), right.tolist(), similarity.tolist()):
        neighbours[a].append((b, s))
        neighbours[b].append((a, s))
    kept: set[int] = set()
    removed: dict[int, tuple[int, float]] = {}
    for doc in sorted(neighbours, key=lambda d: int(priority[d])):
        partners = [(s, -int(priority[n]), n) for n, s in neighbours[doc] if n in kept]
        if partners:
            s, _, partner = max(partners)
            removed[doc] = (partner, s)
        else:
            kept.add(doc)
    cluster_of = _components(left, right)
    sizes: dict[int, int] = defaultdict(int)
    for root in cluster_of.values():
        sizes[root] += 1
    return Resolution(removed, cluster_of, dict(sizes))
