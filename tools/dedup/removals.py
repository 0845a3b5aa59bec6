"""The merge's decisions on disk: one table of removed documents per partition.

Each deciding item (an exact-hash partition, a fuzzy component partition) writes a structured
array of its removals, sorted by (shard, line): the removed document's shard and line, its kept
partner's shard and row, and method-specific details. The write step of one shard reads its slice
of every table (memory-mapped, found by binary search), so no process holds every decision.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from foundation.atomic_write import write_npy_atomic
from foundation.records.document import Removal
from tools.dedup.index import CorpusLayout
from tools.dedup.sorted_file import SortedFile

BASE_FIELDS = [("shard", np.int64), ("line", np.int64), ("partner_shard", np.int64), ("partner_row", np.int64)]


def write_removals(path: Path, columns: dict[str, np.ndarray], details: list[tuple[str, type]]) -> None:
    """``columns``: the base fields and ``details`` as equal-length arrays."""
    table = np.empty(len(columns["shard"]), dtype=BASE_FIELDS + details)
    for name in table.dtype.names:
        table[name] = columns[name]
    write_npy_atomic(path, table[np.lexsort((table["line"], table["shard"]))])


@dataclass(frozen=True)
class RemovalTables:
    directory: Path
    parts: int
    remedy: str  # what to do when a table cannot be read

    def path(self, part: int) -> Path:
        return Path(self.directory) / f"p{part:04d}.npy"

    def rows(self, shard_index: int) -> np.ndarray:
        """Every table's removals in one shard, by line."""
        slices = []
        for part in range(self.parts):
            table = SortedFile(self.path(part), self.remedy)
            slices.append(table.slice(shard_index, shard_index + 1, field="shard"))
            table.close()
        if not slices:
            return np.zeros(0, dtype=BASE_FIELDS)
        rows = np.concatenate(slices)
        return rows[np.argsort(rows["line"], kind="stable")]

    def digest(self, shard_index: int) -> str:
        return hashlib.blake2b(self.rows(shard_index).tobytes(), digest_size=16).hexdigest()

    def removals(self, shard_index: int, layout: CorpusLayout, reason: str,
                 details: Callable[[np.void], dict[str, Any]]) -> dict[int, Removal]:
        """``{line: Removal}``; each removal's details name the kept partner's id and location."""
        result = {}
        for row in self.rows(shard_index):
            partner, partner_row = int(row["partner_shard"]), int(row["partner_row"])
            result[int(row["line"])] = Removal(reason, {"partner_id": layout.doc_id(partner, partner_row),
                                                        "partner_source": layout.source(partner, partner_row),
                                                        **details(row)})
        return result
