"""``qwen-bench tokenize``: end-to-end tokenization MB/s per core against raw tiktoken, same text, one run.

Columns, all on one core over the same documents (Python standard-library sources as JSONL):
- raw tiktoken: ``encode_ordinary`` over texts already in memory (the ceiling);
- Megatron-style loop: per document ``json.loads``, encode, ``add_item`` of a torch tensor and
  ``end_document`` (what Megatron-LM's ``preprocess_data.py`` does in each worker);
- ``qwen-data tokenize --workers 1``: JSONL file to finished, merged and checked ``.bin/.idx``.
MB are UTF-8 bytes of document text in every column. "Per core" divides by CPU seconds (this
process and its worker processes, user + system), so other load on a shared machine does not skew
the ratios; wall seconds are shown too. Columns are run in turn ``--repeat`` times and the best
(least CPU) of each is reported. The last row runs ``qwen-data tokenize`` with ``--workers``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import json
import os
import platform
import resource
import sysconfig
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import torch

from foundation.indexed_writer import IndexedDatasetBuilder, token_dtype
from tools.stage.runner import StageConfig
from tools.tokenize.cli import tokenize
from tools.tokenize.shard import TokenizerSpec


RAW = "raw tiktoken encode_ordinary (texts in memory)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--megabytes", type=float, default=8.0,
                        help="text to tokenize, taken from the Python standard library sources (default 8)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per column; the best is reported (default 3)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="workers of the multi-process row (default: all cores)")


def stdlib_texts(megabytes: float) -> list[str]:
    """Real code and docstrings, read in a fixed order until ``megabytes`` of UTF-8 is collected."""
    texts, total = [], 0
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).rglob("*.py")):
        if total >= megabytes * 1e6:
            break
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        texts.append(text)
        total += len(text.encode("utf-8"))
    return texts


def write_shards(texts: list[str], directory: Path, shards: int) -> Path:
    directory.mkdir(parents=True)
    for shard in range(shards):
        with open(directory / f"part{shard:03d}.jsonl", "w", encoding="utf-8") as handle:
            for number in range(shard, len(texts), shards):
                handle.write(json.dumps({"id": str(number), "text": texts[number]}, ensure_ascii=False) + "\n")
    return directory


def cpu_seconds() -> float:
    children = resource.getrusage(resource.RUSAGE_CHILDREN)  # finished worker processes
    return time.process_time() + children.ru_utime + children.ru_stime


def measure(function: Callable[[], object]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one call."""
    wall, cpu = time.perf_counter(), cpu_seconds()
    function()
    return time.perf_counter() - wall, cpu_seconds() - cpu


def best_of(columns: dict[str, Callable[[], object]], repeat: int) -> dict[str, tuple[float, float]]:
    """Run the columns in turn ``repeat`` times, so load changes hit all of them alike; least CPU wins."""
    best: dict[str, tuple[float, float]] = {}
    for _ in range(repeat):
        for name, function in columns.items():
            wall, cpu = measure(function)
            if name not in best or cpu < best[name][1]:
                best[name] = (wall, cpu)
    return best


def stage_column(inputs: Path, root: Path, workers: int, body: Callable[[StageConfig], object]) -> Callable[[], None]:
    """A column that runs a stage over ``inputs`` into a fresh output directory each time, quietly."""
    runs = itertools.count()

    def run_stage() -> None:
        config = StageConfig((str(inputs),), root / f"out-{workers}-{next(runs)}", workers=workers, progress=False)
        with contextlib.redirect_stdout(io.StringIO()):  # the stage's own summary table
            body(config)
    return run_stage


def print_rates(title: str, results: dict[str, tuple[float, float]], megabytes: float, baseline: str,
                baseline_label: str) -> None:
    """The Markdown table: wall and CPU seconds, MB/s, MB/s per core, ratio to the baseline column."""
    reference = megabytes / results[baseline][1]
    print(f"\n| {title} | wall s | CPU s | MB/s (wall) | MB/s per core (CPU) | vs {baseline_label} |\n"
          "|---|---|---|---|---|---|")
    for name, (wall, cpu) in results.items():
        per_core = megabytes / cpu
        print(f"| {name} | {wall:.2f} | {cpu:.2f} | {megabytes / wall:.2f} | {per_core:.2f} | "
              f"{per_core / reference:.2f}x |")


def megatron_style_loop(jsonl_files: list[Path], prefix: str) -> None:
    tokenizer = TokenizerSpec().load()
    builder = IndexedDatasetBuilder(prefix + ".bin", dtype=token_dtype(tokenizer.vocab_size))
    for path in jsonl_files:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                ids = tokenizer.encode(json.loads(line)["text"])
                ids.append(tokenizer.eod)
                builder.add_item(torch.tensor(ids))
                builder.end_document()
    builder.finalize(prefix + ".idx")


def run(args: argparse.Namespace) -> int:
    texts = stdlib_texts(args.megabytes)
    megabytes = sum(len(t.encode("utf-8")) for t in texts) / 1e6
    tokenizer = TokenizerSpec().load()  # loaded once (and cached), outside every timed column
    with tempfile.TemporaryDirectory(prefix="qwen-bench-tokenize-") as tmp:
        root = Path(tmp)
        inputs = write_shards(texts, root / "in", max(args.workers, 1) * 2)
        files = sorted(inputs.glob("*.jsonl"))
        megatron_runs = itertools.count()
        columns = {
            RAW: lambda: [tokenizer.encode(t) for t in texts],
            "Megatron-style loop: json.loads + encode + add_item per document":
                lambda: megatron_style_loop(files, str(root / f"megatron{next(megatron_runs)}")),
        }
        for workers in sorted({1, args.workers}):
            name = f"qwen-data tokenize --workers {workers}" + (" (JSONL -> checked .bin/.idx)" if workers == 1 else "")
            columns[name] = stage_column(inputs, root, workers,
                                         lambda config: tokenize(config, TokenizerSpec(), "text_document"))
        results = best_of(columns, args.repeat)
    print(f"\nmachine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"torch {torch.__version__}; {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; "
          f"text: {megabytes:.1f} MB in {len(texts)} documents (stdlib sources); best of {args.repeat}")
    print_rates("tokenization", results, megabytes, RAW, "raw tiktoken")
    return 0
