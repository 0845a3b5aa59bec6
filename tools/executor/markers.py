"""Completion markers: one small JSON file per finished item of a step.

A marker holds the item's result and the key it was computed from (the input file's fingerprint,
digests of what else the result depends on). A rerun, a resubmitted SLURM task or another machine
skips exactly the items whose marker has the same key, so an interrupted run resumes where it
stopped and a changed input redoes only what it changed. Markers also keep when an item ran, for
how long (wall and CPU seconds) and its peak memory, which the manifests and ``qwen-bench dedup``
report per step.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from foundation.atomic_write import write_json_atomic


def _canonical(value: Any) -> Any:
    """The value as it reads back from JSON, so a fresh key compares equal to a stored one."""
    return json.loads(json.dumps(value, default=str))


@dataclass(frozen=True)
class Markers:
    directory: Path

    def path(self, item: str) -> Path:
        return Path(self.directory) / f"{item}.json"

    def read(self, item: str) -> dict[str, Any] | None:
        try:
            return json.loads(self.path(item).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def result(self, item: str, key: dict[str, Any]) -> dict[str, Any] | None:
        """The stored result when the item finished from this same key, else None."""
        marker = self.read(item)
        if marker is None or marker.get("key") != _canonical(key):
            return None
        return marker["result"]

    def mark(self, item: str, key: dict[str, Any], result: dict[str, Any], started: float, seconds: float,
             cpu_seconds: float, peak_rss_mb: float | None) -> None:
        write_json_atomic(self.path(item), {"item": item, "key": _canonical(key), "result": result,
                                            "started": round(started, 3), "seconds": round(seconds, 3),
                                            "cpu_s": round(cpu_seconds, 3), "peak_rss_mb": peak_rss_mb})
