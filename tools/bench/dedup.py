"""``qwen-bench dedup``: MinHash dedup quality on the labelled set, and signature throughput per
core against datasketch used the plain way, side by side in one run.

Signature throughput (one process, shingling included in every column):
- plain: one ``MinHash`` per document, default hash (SHA-1), ``update`` per word 5-gram string;
- plain batch: the same, but one ``update_batch`` per document;
- ours: ``tools.dedup.shingles.Signer`` (numpy shingle hashes fed to datasketch in one batch).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
from datasketch import MinHash

from tools.dedup.labelled import build_labelled_set, score
from tools.dedup.minhash import MinHashDedup, MinHashSettings
from tools.dedup.shingles import Signer, word_hashes
from tools.stage import StageConfig, run_corpus_stage
from tools.stage.output import StageOutput


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--originals", type=int, default=3000, help="original documents in the labelled set")
    parser.add_argument("--threshold", type=float, default=0.8)
    parser.add_argument("--num-perm", type=int, default=128)
    parser.add_argument("--signature-docs", type=int, default=500,
                        help="documents on which the three signature methods are timed (default 500)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="workers of the end-to-end run")
    parser.add_argument("--seed", type=int, default=0, help="seed of the labelled set")
    parser.add_argument("--scale", type=int, default=0, metavar="DOCS",
                        help="also deduplicate DOCS synthetic documents (120 random words, 10%% near copies) "
                             "in 8 shards and report the rate and peak memory (default: skip)")


def _synthetic_corpus(directory: Path, documents: int, shards: int = 8, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    vocabulary = np.array([f"w{i}" for i in range(20_000)])
    words = rng.integers(0, len(vocabulary), size=(documents, 120))
    copies = rng.random(documents) < 0.1
    sources = rng.integers(0, np.maximum(np.arange(documents), 1))
    words[copies] = words[sources[copies]]
    edits = (rng.random(words.shape) < 0.01) & copies[:, None]
    words[edits] = rng.integers(0, len(vocabulary), size=int(edits.sum()))
    directory.mkdir(parents=True, exist_ok=True)
    handles = [open(directory / f"part{i}.jsonl", "w", encoding="utf-8") for i in range(shards)]
    for number, row in enumerate(words):
        handles[number % shards].write(json.dumps({"id": f"d{number}", "text": " ".join(vocabulary[row])}) + "\n")
    for handle in handles:
        handle.close()


def _scale_run(documents: int, workers: int, tmp: Path) -> str:
    _synthetic_corpus(tmp / "scale", documents)
    config = StageConfig((str(tmp / "scale"),), tmp / "scale-out", workers=workers, progress=False)
    started = time.perf_counter()
    run_corpus_stage(MinHashDedup(), config)
    elapsed = time.perf_counter() - started
    removed = StageOutput.load(config.output).manifest["counts"]["removed"]
    peak_mb = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    return (f"| synthetic scale run: {documents:,} documents, 8 shards, {workers} workers | "
            f"{documents / elapsed:,.0f} docs/s ({elapsed:.1f} s), {removed:,} removed, peak RSS {peak_mb:,.0f} MB |")


def _word_5grams(text: str) -> list[bytes]:
    words = text.lower().split()
    return [" ".join(words[i:i + 5]).encode("utf-8") for i in range(max(len(words) - 4, 1))]


def _plain(text: str, num_perm: int) -> None:
    sketch = MinHash(num_perm=num_perm)
    for shingle in _word_5grams(text):
        sketch.update(shingle)


def _plain_batch(text: str, num_perm: int) -> None:
    MinHash(num_perm=num_perm).update_batch(_word_5grams(text))


def _interleaved_rates(functions: list[Callable[[str], object]], texts: list[str]) -> list[tuple[float, float]]:
    """(docs/s, MB/s) of each function over ``texts``; the functions take turns on each document,
    so load from other processes on the machine hits all of them alike."""
    seconds = [0.0] * len(functions)
    for text in texts:
        for position, function in enumerate(functions):
            started = time.perf_counter()
            function(text)
            seconds[position] += time.perf_counter() - started
    megabytes = sum(len(t.encode()) for t in texts) / 1e6
    return [(len(texts) / s, megabytes / s) for s in seconds]


def run(args: argparse.Namespace) -> int:
    labelled = build_labelled_set(originals=args.originals, seed=args.seed)
    texts = [doc["text"] for doc in labelled.documents]
    mean_shingles = sum(max(len(word_hashes(t)) - 4, 1) for t in texts) / len(texts)
    signer = Signer(num_perm=args.num_perm)
    names = ["datasketch plain (update per shingle, SHA-1)", "datasketch update_batch per document (SHA-1)",
             "qwen-data dedup Signer (numpy shingles -> datasketch)"]
    rates = _interleaved_rates([lambda t: _plain(t, args.num_perm), lambda t: _plain_batch(t, args.num_perm),
                                signer.minhash], texts[:args.signature_docs])
    rows = [(name, *rate) for name, rate in zip(names, rates)]
    with tempfile.TemporaryDirectory(prefix="qwen-bench-dedup-") as tmp:
        data = Path(tmp) / "labelled.jsonl"
        labelled.write(data)
        config = StageConfig((str(data),), Path(tmp) / "out", workers=args.workers, progress=False)
        stage = MinHashDedup(MinHashSettings(threshold=args.threshold, num_perm=args.num_perm))
        started = time.perf_counter()
        run_corpus_stage(stage, config)
        elapsed = time.perf_counter() - started
        result = StageOutput.load(config.output)
        scale_row = _scale_run(args.scale, args.workers, Path(tmp)) if args.scale else None
    quality = score(labelled, {r["id"]: r["details"]["partner_id"] for r in result.removed})
    baseline = rows[0][1]
    print(f"\nmachine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"labelled set: {len(texts)} documents, {mean_shingles:.0f} shingles/document, num_perm {args.num_perm}")
    print("\n| signatures, one core | docs/s | MB/s | vs plain |\n|---|---|---|---|")
    for name, docs, megabytes in rows:
        print(f"| {name} | {docs:,.0f} | {megabytes:.2f} | {docs / baseline:.1f}x |")
    lsh = result.manifest["lsh"]
    print(f"\n| quality at threshold {args.threshold} ({lsh['bands']} bands x {lsh['rows']} rows) | value |\n|---|---|")
    print(f"| recall (documents with an earlier partner of Jaccard >= 0.85 that were removed) | {quality.recall:.4f} "
          f"({quality.should_remove} documents) |")
    print(f"| precision (removed documents whose kept partner has Jaccard >= 0.7) | {quality.precision:.4f} "
          f"({quality.removed} removed) |")
    print(f"| end-to-end dedup, {args.workers} workers | {len(texts) / elapsed:,.0f} docs/s ({elapsed:.1f} s) |")
    print(f"| candidate pairs / verified pairs / largest cluster | {result.manifest['candidate_pairs']} / "
          f"{result.manifest['verified_pairs']} / {result.manifest['largest_cluster']} |")
    if scale_row:
        print(scale_row)
    return 0
