"""Scale runs of ``qwen-bench dedup --scale N ...``: synthetic corpora of N documents, the task
count growing with N (``--docs-per-task``), wall time, CPU and peak memory per step.

The corpus is written in files of ``DOCS_PER_FILE`` documents (so shards stay the same size) with
bounded memory: each document's words come from its own seeded generator, and 10% of documents
are near copies (1% of words changed) of an earlier one, regenerated from that one's seed. The
peak memory of a step is its largest item's (each worker resets its high-water mark per item),
so a merge step that holds its partition, never the corpus, stays flat as N doubles with the task
count.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

DOCS_PER_FILE = 25_000
WORDS = 120
VOCABULARY = 20_000


def _words(number: int) -> np.ndarray:
    return np.random.default_rng([7, number]).integers(0, VOCABULARY, size=WORDS)


def write_synthetic_corpus(directory: Path, documents: int) -> None:
    vocabulary = np.array([f"w{i}" for i in range(VOCABULARY)])
    directory.mkdir(parents=True, exist_ok=True)
    for first in range(0, documents, DOCS_PER_FILE):
        lines = []
        for number in range(first, min(first + DOCS_PER_FILE, documents)):
            rng = np.random.default_rng([11, number])
            words = _words(number)
            if number and rng.random() < 0.1:
                words = _words(int(rng.integers(0, number))).copy()
                edits = rng.random(WORDS) < 0.01
                words[edits] = rng.integers(0, VOCABULARY, size=int(edits.sum()))
            lines.append(json.dumps({"id": f"d{number}", "text": " ".join(vocabulary[words])}) + "\n")
        (directory / f"part{first // DOCS_PER_FILE:05d}.jsonl").write_text("".join(lines))


def scale_run(documents: int, tasks: int, workers: int, root: Path, verification: str = "exact") -> dict:
    """``qwen-data dedup`` in a fresh process (as a task would start), so the benchmark's own memory
    is not in the workers' peaks."""
    corpus = root / f"corpus-{documents}"
    if not corpus.exists():
        write_synthetic_corpus(corpus, documents)
    output = root / f"out-{documents}-{verification}"
    started = time.perf_counter()
    subprocess.run([str(Path(sys.executable).parent / "qwen-data"), "dedup", "--method", "minhash", "--input",
                    str(corpus), "--output", str(output), "--workers", str(workers), "--tasks", str(tasks),
                    "--verification", verification, "--no-progress"], check=True, stdout=subprocess.DEVNULL)
    return {"documents": documents, "tasks": tasks, "verification": verification,
            "manifest": json.loads((output / "manifest.json").read_text()), "wall_s": time.perf_counter() - started}


def _short(step: str) -> str:
    return step.removeprefix("dedup-minhash").strip() or "write"


def scale_table(runs: list[dict]) -> str:
    """One row per run and step: items, wall s, CPU s, largest item peak RSS."""
    lines = ["| documents | tasks | verification | step | items | wall s | CPU s (all items) | peak RSS per item, MB |",
             "|---|---|---|---|---|---|---|---|"]
    for run in runs:
        for step, phase in run["manifest"]["phases"].items():
            if phase.get("ran"):
                lines.append(f"| {run['documents']:,} | {run['tasks']} | {run['verification']} | {_short(step)} | "
                             f"{phase['items']} | {phase['wall_s']:.1f} | {phase['cpu_s']:.1f} | "
                             f"{phase['peak_rss_mb']:.0f} |")
        m = run["manifest"]
        lines.append(f"| {run['documents']:,} | {run['tasks']} | {run['verification']} | **whole run** | | "
                     f"**{run['wall_s']:.1f}** | | removed {m['counts']['removed']:,}, candidates "
                     f"{m['candidate_pairs']:,}, verified {m['verified_pairs']:,} |")
    return "\n".join(lines)


MERGE_STEPS = ("buckets", "components", "route", "resolve")


def flatness(runs: list[dict]) -> str:
    """The merge steps' largest per-item peak, per run: flat when the merge holds no corpus-wide data."""
    parts = []
    for run in runs:
        peaks = [phase["peak_rss_mb"] for step, phase in run["manifest"]["phases"].items()
                 if phase.get("ran") and any(name in step for name in MERGE_STEPS)]
        parts.append(f"{run['documents']:,} documents / {run['tasks']} tasks: {max(peaks):.0f} MB")
    return "merge steps, largest peak RSS of one item: " + "; ".join(parts)
