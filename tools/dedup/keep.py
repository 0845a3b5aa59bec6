"""Which copy of a duplicate group is kept: a deterministic priority for every document."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

import numpy as np

from tools.stage import InputError, Shard

KEEP_POLICIES = ("first-seen", "source-priority")
_LINE_BITS = 32


@dataclass(frozen=True)
class KeepPolicy:
    """``first-seen``: the order of the --input arguments, then file name, then line, so listing
    an old corpus first deduplicates a new crawl against it. ``source-priority``: files matching
    an earlier of ``patterns`` win (unmatched files come last), ties broken by first-seen."""

    name: str = "first-seen"
    patterns: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.name not in KEEP_POLICIES:
            raise InputError(f"--keep must be one of {', '.join(KEEP_POLICIES)}, got {self.name!r}")
        if self.name == "source-priority" and not self.patterns:
            raise InputError("--keep source-priority needs --source-priority PATTERN [PATTERN ...]")

    def _shard_key(self, shard: Shard) -> tuple[int, int]:
        if self.name == "first-seen":
            return (0, shard.index)
        matched = [i for i, pattern in enumerate(self.patterns) if fnmatch.fnmatch(shard.path, pattern)]
        return (matched[0] if matched else len(self.patterns), shard.index)

    def shard_ranks(self, shards: list[Shard]) -> dict[int, int]:
        ordered = sorted(shards, key=self._shard_key)
        return {shard.index: rank for rank, shard in enumerate(ordered)}

    @staticmethod
    def document_priority(shard_rank: int, lines: np.ndarray) -> np.ndarray:
        """Lower is kept first."""
        return (np.int64(shard_rank) << np.int64(_LINE_BITS)) + lines.astype(np.int64)
