"""Every scoring test's accounting check: in = kept + removed + rejected, in the manifest and on disk."""

from __future__ import annotations

import json
from pathlib import Path

from tests.tools.score.corpora import stage_records


def assert_accounted(output: Path, documents_in: int) -> dict:
    manifest = json.loads((output / "manifest.json").read_text(encoding="utf-8"))
    counts = manifest["counts"]
    assert counts["in"] == documents_in
    assert counts["in"] == counts["kept"] + counts["removed"] + counts["rejected"]
    for kind in ("kept", "removed", "rejected"):
        assert len(stage_records(output, kind)) == counts[kind], kind
    assert sum(counts["removed_by_reason"].values()) == counts["removed"]
    return manifest
