"""``qwen-bench decontaminate``: 13-gram decontamination MB/s per core against HumanEval, one run.

Columns, over the same documents (Python standard-library sources, every 50th with a HumanEval
problem planted so the removal path runs too):
- plain Python: ``\\w+`` words, a set of 13-word tuples, every window of every document looked up;
- ``BenchmarkIndex.matches``: the matching core of ``qwen-data decontaminate`` (texts in memory);
- ``qwen-data decontaminate --workers 1``: JSONL to kept/ removed/ and the report (scan + write);
- the same with ``--workers`` processes.
Per core divides by CPU seconds of this process and its workers (see ``tools.bench.tokenize``).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from tools.bench.tokenize import best_of, print_rates, stage_column, stdlib_texts, write_shards
from tools.decontaminate.benchmarks import BenchmarkSpec, load_benchmarks
from tools.decontaminate.index import BenchmarkIndex
from tools.decontaminate.stage import DecontaminationConfig, run_decontamination

PLANT_EVERY = 50
PLAIN = "plain Python: \\w+ words, set of 13-word tuples"
WORD = re.compile(r"\w+")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--megabytes", type=float, default=8.0,
                        help="text to scan, taken from the Python standard library sources (default 8)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per column; the best is reported (default 3)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="workers of the multi-process row (default: all cores)")


def plain_python(benchmark_texts: list[str], n: int = 13) -> Callable[[list[str]], int]:
    """The straightforward implementation, as a baseline: returns the number of documents hit."""
    ngrams = set()
    for text in benchmark_texts:
        words = [w.lower() for w in WORD.findall(text)]
        ngrams.update(tuple(words[i:i + n]) for i in range(len(words) - n + 1))

    def count_hits(texts: list[str]) -> int:
        hits = 0
        for text in texts:
            words = [w.lower() for w in WORD.findall(text)]
            hits += any(tuple(words[i:i + n]) in ngrams for i in range(len(words) - n + 1))
        return hits
    return count_hits


def run(args: argparse.Namespace) -> int:
    items = load_benchmarks([BenchmarkSpec.parse("humaneval")])
    texts = stdlib_texts(args.megabytes)
    for position in range(0, len(texts), PLANT_EVERY):
        item = items[position // PLANT_EVERY % len(items)]
        texts[position] = texts[position] + "\n" + item.text
    megabytes = sum(len(t.encode("utf-8")) for t in texts) / 1e6
    index = BenchmarkIndex.build(items)
    plain = plain_python([item.text for item in items])
    with tempfile.TemporaryDirectory(prefix="qwen-bench-decontaminate-") as tmp:
        root = Path(tmp)
        inputs = write_shards(texts, root / "in", max(args.workers, 1) * 2)
        columns = {
            PLAIN: lambda: plain(texts),
            "BenchmarkIndex.matches (texts in memory)": lambda: [index.matches(t) for t in texts],
        }
        for workers in sorted({1, args.workers}):
            name = f"qwen-data decontaminate --workers {workers}" + \
                (" (JSONL -> kept/removed/report)" if workers == 1 else "")
            columns[name] = stage_column(inputs, root, workers, lambda config: run_decontamination(
                items, DecontaminationConfig(("humaneval",)), config))
        results = best_of(columns, args.repeat)
    print(f"\nmachine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; text: {megabytes:.1f} MB in {len(texts)} documents "
          f"(stdlib sources, {len(range(0, len(texts), PLANT_EVERY))} with HumanEval planted); benchmark: "
          f"HumanEval, {len(index.ngram_items):,} distinct 13-grams; best of {args.repeat}")
    print_rates("decontamination", results, megabytes, PLAIN, "plain Python")
    return 0
