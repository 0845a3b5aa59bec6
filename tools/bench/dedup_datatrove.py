"""datatrove's MinHash signature and bucket stages next to ours, on the same documents, one core.

datatrove gets the documents already in memory (no reading); ``qwen-data dedup`` reads them from
JSON Lines, so its index step also parses JSON. Its buckets step verifies every candidate by exact
Jaccard, which datatrove's does not do; the signature-verification row shows it without that.
CPU seconds of the process for each stage.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
import time
from pathlib import Path

from tools.dedup.minhash import MinHashDedup, MinHashSettings
from tools.stage import StageConfig, run_corpus_stage


def _cpu(function) -> float:
    started = time.process_time()
    with contextlib.redirect_stdout(io.StringIO()):
        function()
    return time.process_time() - started


def datatrove_stages(documents: list[dict], directory: Path) -> dict[str, float] | None:
    """CPU seconds of datatrove's signature stage and of its bucket stage (all 14 buckets)."""
    try:
        from datatrove.data import Document
        from datatrove.pipeline.dedup.minhash import MinhashConfig, MinhashDedupBuckets, MinhashDedupSignature
        from datatrove.utils.logging import logger
    except ImportError:
        return None
    logger.remove()  # its per-step log lines
    config = MinhashConfig()
    signatures = MinhashDedupSignature(str(directory / "signatures"), config)
    docs = [Document(text=d["text"], id=d["id"]) for d in documents]
    sign = _cpu(lambda: signatures.run(iter(docs), rank=0, world_size=1))
    buckets = MinhashDedupBuckets(str(directory / "signatures"), str(directory / "buckets"), config=config)
    bucket = _cpu(lambda: [buckets.run(None, rank, config.num_buckets) for rank in range(config.num_buckets)])
    return {"signatures": sign, "buckets": bucket}


def ours(path: Path, directory: Path, verification: str) -> dict[str, float]:
    """CPU seconds of our index and buckets steps (one worker, one partition)."""
    stage = MinHashDedup(MinHashSettings(verification=verification))
    with contextlib.redirect_stdout(io.StringIO()):
        manifest = run_corpus_stage(stage, StageConfig((str(path),), directory, workers=1, progress=False), 1)
    phases = manifest["phases"]
    return {"signatures": phases[f"{stage.name} index"]["cpu_s"],
            "buckets": next(v["cpu_s"] for k, v in phases.items() if "buckets" in k)}


def side_by_side_table(documents: list[dict], path: Path) -> str:
    with tempfile.TemporaryDirectory(prefix="qwen-bench-datatrove-") as tmp:
        theirs = datatrove_stages(documents, Path(tmp) / "datatrove")
        exact = ours(path, Path(tmp) / "exact", "exact")
        estimate = ours(path, Path(tmp) / "signature", "signature")
    count = len(documents)
    lines = [f"| {count:,} documents, one core | signatures: docs/s per core | buckets: docs/s per core |",
             "|---|---|---|"]
    rows = [("qwen-data dedup (exact verification)", exact), ("qwen-data dedup (signature verification)", estimate)]
    if theirs is None:
        lines.append("| datatrove | not installed (pip install -e '.[bench]') | |")
    else:
        rows.append(("datatrove MinhashDedupSignature / MinhashDedupBuckets (no verification)", theirs))
    for name, seconds in rows:
        lines.append(f"| {name} | {count / seconds['signatures']:,.0f} | {count / seconds['buckets']:,.0f} |")
    if theirs is not None:
        lines.append(f"| ratio, ours (exact) / datatrove | **{theirs['signatures'] / exact['signatures']:.1f}x** | "
                     f"{theirs['buckets'] / exact['buckets']:.1f}x |")
    return "\n".join(lines)
