"""Reading a finished stage's output directory back (for the next stage, reports and tests)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def _records(directory: Path) -> list[dict[str, Any]]:
    records = []
    for path in sorted(directory.glob("*.jsonl")):
        with open(path, encoding="utf-8") as handle:
            records.extend(json.loads(line) for line in handle)
    return records


@dataclass(frozen=True)
class StageOutput:
    kept: list[dict[str, Any]]
    removed: list[dict[str, Any]]
    rejected: list[dict[str, Any]]
    manifest: dict[str, Any]

    @classmethod
    def load(cls, output: Path) -> "StageOutput":
        output = Path(output)
        manifest = json.loads((output / "manifest.json").read_text(encoding="utf-8"))
        return cls(_records(output / "kept"), _records(output / "removed"), _records(output / "rejected"), manifest)

    def removed_by_id(self) -> dict[str, dict[str, Any]]:
        return {record["id"]: record for record in self.removed}
