"""``qwen-data review STAGE_OUTPUT... --output review.html``: a page for reading a sample of what
stages kept and removed (see ``tools.review``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from foundation.atomic_write import write_bytes_atomic
from foundation.dispatch import positive_int
from tools.review.page import render
from tools.review.sample import sample_stages
from tools.stage.cli import run_reporting_errors


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Write one self-contained HTML page (no network) showing a seeded sample of the documents that "
        "stages kept and removed: up to --per-group documents of each stage, source (the pipeline's source, "
        "else the input file) and "
        "outcome (kept, or removed for one reason), with the text (truncated, expandable), the reason, "
        "the measured value against its limit and the scores, filterable by stage, reason, source and "
        "score range in the page. A removed document's text is read back from the FILE:LINE its record "
        "names, so run it where the stage ran (paths are as the stage recorded them).")
    parser.add_argument("stage_outputs", nargs="+", type=Path, metavar="STAGE_OUTPUT",
                        help="output directory of a qwen-data stage (clean, dedup, decontaminate, or a "
                             "pipeline stage's OUTPUT/<stage>): manifest.json, kept/, removed/")
    parser.add_argument("--output", required=True, type=Path, help="the HTML page to write (atomically)")
    parser.add_argument("--per-group", type=positive_int, default=20, metavar="N",
                        help="documents sampled per stage, source and outcome (default 20)")
    parser.add_argument("--seed", type=int, default=0,
                        help="sampling seed; the same seed and inputs give the same page, byte for byte (default 0)")
    parser.add_argument("--max-chars", type=positive_int, default=20_000, metavar="N",
                        help="characters of each document's text put in the page (default 20000)")


def run(args: argparse.Namespace) -> int:
    def body() -> None:
        sample = sample_stages(args.stage_outputs, args.per_group, args.seed)
        page = render(sample, args.per_group, args.seed, args.max_chars)
        write_bytes_atomic(args.output, page.encode("utf-8"))
        print(f"qwen-data review: {len(sample.documents):,} documents of {sum(sample.counts.values()):,} "
              f"in {len(sample.counts)} groups -> {args.output}")

    return run_reporting_errors("qwen-data review", body)
