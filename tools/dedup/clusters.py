"""From verified similar pairs to keep/remove decisions, one partition of components at a time.

Every removed document has a direct verified edge to a kept document (its named partner), so a
chain a~b~c never removes c because of an a it does not resemble. The decision within one
component depends only on that component's edges and keep priorities, so the resolve step's
items (components spread over ``--tasks`` partitions by the route step) decide independently.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np

from tools.dedup.components import routed_path
from tools.dedup.index import merge_remedy
from tools.dedup.sorted_file import SortedFile
from tools.dedup.partitions import PartitionWork, partition_number
from tools.dedup.removals import write_removals

NEAR_DETAILS = [("similarity", np.float64), ("cluster_size", np.int64)]
REPORTED_CLUSTERS = 20


def keep_decisions(left: np.ndarray, right: np.ndarray, similarity: np.ndarray,
                   priority: np.ndarray) -> dict[int, tuple[int, float]]:
    """``left``/``right``/``similarity``: verified pairs; ``priority[doc]``: lower is kept first.
    In priority order, a document is removed when one of its neighbours was kept (the most similar
    such neighbour becomes its partner), and kept otherwise. Returns removed -> (partner, similarity)."""
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
    return removed


@dataclass(frozen=True)
class ResolveWork(PartitionWork):
    def run(self, item: str) -> dict[str, Any]:
        run, target = self.stage_run, partition_number(item)
        layout = self.layout()
        slices = []
        for part in range(run.partitions):
            routed = SortedFile(routed_path(run, part), merge_remedy(run))
            slices.append(routed.slice(target, target + 1, field="target"))
            routed.close()
        edges = np.concatenate(slices)
        nodes, local = np.unique(np.concatenate([edges["a"], edges["b"]]), return_inverse=True)
        left, right = local[:len(edges)], local[len(edges):]
        removed = keep_decisions(left, right, edges["sim"], layout.priority(nodes))
        component_of = np.empty(len(nodes), dtype=np.int64)
        component_of[left], component_of[right] = edges["component"], edges["component"]
        roots, sizes = np.unique(component_of, return_counts=True)
        size_of = dict(zip(roots.tolist(), sizes.tolist()))
        documents = np.array(sorted(removed), dtype=np.int64)
        partners = np.array([removed[d][0] for d in documents.tolist()], dtype=np.int64)
        shards, _ = layout.locate(nodes[documents])
        partner_shards, partner_rows = layout.locate(nodes[partners])
        write_removals(self.stage.tables(run).path(target),
                       {"shard": shards, "line": layout.gather("lines", nodes[documents]),
                        "partner_shard": partner_shards, "partner_row": partner_rows,
                        "similarity": [removed[d][1] for d in documents.tolist()],
                        "cluster_size": [size_of[c] for c in component_of[documents].tolist()]}, NEAR_DETAILS)
        largest = sorted(zip(sizes.tolist(), roots.tolist()), reverse=True)[:REPORTED_CLUSTERS]
        return {"clusters": int(len(roots)), "largest": [[size, self._id(layout, root)] for size, root in largest]}

    @staticmethod
    def _id(layout, document: int) -> str:
        positions, rows = layout.locate(np.array([document]))
        return layout.doc_id(int(positions[0]), int(rows[0]))
