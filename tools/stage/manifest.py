"""``manifest.json`` and the summary table printed at the end of a run."""

from __future__ import annotations

import platform
import sys
from collections import Counter
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable

from foundation.atomic_write import write_json_atomic

BASE_LIBRARIES = ("qwen-pretrain", "numpy", "tqdm", "zstandard", "pyarrow")
# unreadable_files: files whose rest could not be read (each also one of the rejected records).
COUNT_KEYS = ("in", "kept", "removed", "rejected", "unreadable_files")


class AccountingError(RuntimeError):
    """in != kept + removed + rejected: a bug, never a property of the input."""


def library_versions(libraries: Iterable[str]) -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in (*BASE_LIBRARIES, *libraries):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def total_counts(shard_counts: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Sum per-shard counts and check that every input record is accounted for."""
    totals: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    for counts in shard_counts:
        for key in COUNT_KEYS:
            totals[key] += counts.get(key, 0)
        reasons.update(counts.get("removed_by_reason", {}))
    if totals["in"] != totals["kept"] + totals["removed"] + totals["rejected"]:
        raise AccountingError(f"in={totals['in']} but kept+removed+rejected="
                              f"{totals['kept'] + totals['removed'] + totals['rejected']}")
    return {**{k: totals[k] for k in COUNT_KEYS}, "removed_by_reason": dict(sorted(reasons.items()))}


def write_manifest(output: Path, stage: str, params: dict[str, Any], inputs: list[str],
                   counts: dict[str, Any], wall_time_s: float, libraries: Iterable[str] = (),
                   extra: dict[str, Any] | None = None) -> dict[str, Any]:
    manifest = {
        "stage": stage,
        "command": sys.argv,
        "parameters": params,
        "inputs": inputs,
        "versions": library_versions(libraries),
        "counts": counts,
        "wall_time_s": round(wall_time_s, 3),
        **(extra or {}),
    }
    write_json_atomic(Path(output) / "manifest.json", manifest)
    return manifest


def format_summary(stage: str, counts: dict[str, Any], wall_time_s: float, skipped: int, shards: int) -> str:
    total = max(counts["in"], 1)
    lines = [f"{stage}: {shards} shards ({skipped} finished earlier), {wall_time_s:.1f} s",
             f"  {'':<28}{'documents':>12}{'share':>9}"]
    for key in ("in", "kept", "removed", "rejected"):
        lines.append(f"  {key:<28}{counts[key]:>12,}{counts[key] / total:>9.1%}")
        if key == "removed":
            for reason, n in sorted(counts["removed_by_reason"].items(), key=lambda kv: -kv[1]):
                lines.append(f"    {reason:<26}{n:>12,}{n / total:>9.1%}")
    if counts.get("unreadable_files"):
        lines.append(f"  {counts['unreadable_files']:,} files could not be read to the end: the "
                     "rejections whose error starts with 'unreadable' in rejected/ say where")
    return "\n".join(lines)
