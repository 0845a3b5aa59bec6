"""Connected components of the verified-pair graph, computed across tasks, none holding all edges.

Documents are split into ``--tasks`` ranges of global document numbers; an item owns the edges of
its range's documents (read as slices of every bucket partition's sorted edges).

- Round 1: each document's label is the smallest of itself and its neighbours.
- Round 2: the smallest label among itself and its neighbours, then a shortcut: the label of
  that label (looked up in round 1's labels of the range that owns it). A component of diameter
  up to about four ends with one label everywhere. What may still differ is written as pending
  pairs of labels: (new label, old label) of each document whose label changed, and (new label,
  neighbour's old label) of each edge whose ends disagree. Any two labels of one component are
  linked through these pairs.
- Route: every item joins the (usually few) pending pairs of all ranges with union-find, which
  gives each document its component's smallest document, the final label; it then sends each of
  its edges to the resolve partition of its component (a hash of the label), so that each
  component is decided in one place.

Minimum labels are deterministic, so the components never depend on how the work was split.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from foundation.atomic_write import write_npy_atomic
from tools.dedup.buckets import EDGE, bucket_items, edges_path
from tools.dedup.index import CorpusLayout, corpus_layout, load_array, merge_remedy
from tools.dedup.sorted_file import SortedFile
from tools.dedup.partitions import PartitionWork, node_bounds, node_partition, partition_number, spread
from tools.stage.plan import StageRun

if TYPE_CHECKING:
    from tools.dedup.minhash import MinHashDedup

LABEL = np.dtype([("node", np.int64), ("label", np.int64)])
ROUTED = np.dtype([("target", np.int64), ("component", np.int64), ("a", np.int64), ("b", np.int64),
                   ("sim", np.float64)])


def _path(run: StageRun, name: str, part: int) -> Path:
    return run.merge_dir / "components" / f"{name}-p{part:04d}.npy"


@dataclass
class _Graph:
    """One item's view: its range, the corpus layout, and the files of other ranges."""

    run: StageRun
    stage: "MinHashDedup"

    @functools.cached_property
    def layout(self) -> CorpusLayout:
        return corpus_layout(self.run, self.stage.keep)

    @functools.cached_property
    def bounds(self) -> np.ndarray:
        return node_bounds(self.run.partitions, self.layout.size)

    def load(self, name: str, part: int) -> np.ndarray:
        return load_array(_path(self.run, name, part), merge_remedy(self.run))

    def labels(self, name: str, nodes: np.ndarray) -> np.ndarray:
        """Labels of ``nodes`` (every one has an edge) from the label files of their ranges."""
        found = np.empty(len(nodes), dtype=np.int64)
        parts = node_partition(nodes, self.bounds)
        for part in np.unique(parts).tolist():
            mask = parts == part
            table = self.load(name, part)
            found[mask] = table["label"][np.searchsorted(table["node"], nodes[mask])]
        return found


def _smallest_per_node(nodes: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For sorted ``nodes``: each distinct node and the smallest of its ``values``."""
    if not len(nodes):
        return nodes, values
    starts = np.concatenate(([0], np.flatnonzero(np.diff(nodes)) + 1))
    return nodes[starts], np.minimum.reduceat(values, starts)


def _write_labels(path: Path, nodes: np.ndarray, labels: np.ndarray) -> None:
    table = np.empty(len(nodes), dtype=LABEL)
    table["node"], table["label"] = nodes, labels
    write_npy_atomic(path, table)


@dataclass(frozen=True)
class ComponentsWork(PartitionWork):
    round: int = 1  # 1 or 2

    def run(self, item: str) -> dict[str, Any]:
        graph, part = _Graph(self.stage_run, self.stage), partition_number(item)
        return self._first(graph, part) if self.round == 1 else self._second(graph, part)

    def _first(self, graph: _Graph, part: int) -> dict[str, Any]:
        low, high = graph.bounds[part], graph.bounds[part + 1]
        slices = []
        for bucket in bucket_items(self.stage.banding.bands, self.stage_run.partitions):
            edges = SortedFile(edges_path(self.stage_run, bucket), merge_remedy(self.stage_run))
            slices.append(edges.slice(low, high, field="a"))
            edges.close()
        edges = np.concatenate(slices) if slices else np.zeros(0, dtype=EDGE)
        # A pair verified in several bands appears once per band, with the same similarity.
        edges = edges[np.unique(np.stack([edges["a"], edges["b"]], axis=1), axis=0, return_index=True)[1]] \
            if len(edges) else edges
        write_npy_atomic(_path(self.stage_run, "adjacency", part), edges)
        nodes, smallest = _smallest_per_node(edges["a"], edges["b"])
        labels = np.minimum(nodes, smallest)
        _write_labels(_path(self.stage_run, "labels1", part), nodes, labels)
        return {"nodes": int(len(nodes)), "changed": int((labels != nodes).sum())}

    def _second(self, graph: _Graph, part: int) -> dict[str, Any]:
        edges = graph.load("adjacency", part)
        own = graph.load("labels1", part)
        neighbour_labels = graph.labels("labels1", np.asarray(edges["b"]))
        nodes, smallest = _smallest_per_node(np.asarray(edges["a"]), neighbour_labels)
        hooked = np.minimum(np.asarray(own["label"]), smallest)
        labels = graph.labels("labels1", hooked)  # the shortcut: the label of the label
        _write_labels(_path(self.stage_run, "labels2", part), nodes, labels)
        changed = labels != own["label"]
        new_of_edge = labels[np.searchsorted(nodes, edges["a"])]
        disagree = new_of_edge != neighbour_labels
        pending = np.concatenate([np.stack([labels[changed], own["label"][changed]], axis=1),
                                  np.stack([new_of_edge[disagree], neighbour_labels[disagree]], axis=1)])
        pending = np.unique(np.sort(pending, axis=1), axis=0) if len(pending) else pending.reshape(0, 2)
        write_npy_atomic(_path(self.stage_run, "pending", part), pending.astype(np.int64))
        return {"nodes": int(len(nodes)), "changed": int(changed.sum()), "pending": int(len(pending))}


def _final_labels(pending: np.ndarray) -> dict[int, int]:
    """Union-find over the pending label pairs; each label's root is its class's smallest."""
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        root = x
        while parent.setdefault(root, root) != root:
            root = parent[root]
        while parent[x] != root:
            parent[x], x = root, parent[x]
        return root

    for a, b in pending.tolist():
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return {x: find(x) for x in list(parent)}


def routed_path(run: StageRun, part: int) -> Path:
    return run.merge_dir / "routed" / f"p{part:04d}.npy"


@dataclass(frozen=True)
class RouteWork(PartitionWork):
    def run(self, item: str) -> dict[str, Any]:
        graph, part, count = _Graph(self.stage_run, self.stage), partition_number(item), self.stage_run.partitions
        pending = np.concatenate([graph.load("pending", other) for other in range(count)])
        final = _final_labels(pending)
        edges = graph.load("adjacency", part)
        edges = np.asarray(edges[edges["a"] < edges["b"]])  # each edge once, from its smaller end's range
        labels = graph.load("labels2", part)
        component = labels["label"][np.searchsorted(labels["node"], edges["a"])]
        if final:
            component = np.array([final.get(label, label) for label in component.tolist()], dtype=np.int64)
        routed = np.empty(len(edges), dtype=ROUTED)
        routed["target"], routed["component"] = spread(component, count), component
        routed["a"], routed["b"], routed["sim"] = edges["a"], edges["b"], edges["sim"]
        routed = routed[np.lexsort((routed["b"], routed["a"], routed["component"], routed["target"]))]
        write_npy_atomic(routed_path(self.stage_run, part), routed)
        return {"edges": int(len(routed)), "pending_pairs": int(len(pending))}
