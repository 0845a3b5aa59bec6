"""``qwen-bench dedup``: MinHash dedup quality, signature throughput per core against datasketch used
the plain way and against datatrove, datatrove's signature and bucket stages side by side, and
scale runs (``--scale``) with wall time, CPU and peak memory per step. Everything in one run.

- Quality: the labelled set built from stdlib sources (``labelled``) and the harder real-prose set
  (``labelled_real``), each deduplicated at threshold 0.8 and 0.85 with exact and with signature
  verification; recall and precision at the run's threshold (see ``labelled.evaluate``).
- Signatures: ``dedup_signatures``. Side by side: ``dedup_datatrove``. Scale: ``dedup_scale``
  (``--verification-cost`` runs the first size again with signature verification).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import platform
import tempfile
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from tools.bench.dedup_datatrove import side_by_side_table
from tools.bench.dedup_scale import flatness, scale_run, scale_table
from tools.bench.dedup_signatures import signature_table
from tools.dedup.labelled import LabelledSet, build_labelled_set, evaluate
from tools.dedup.labelled_real import build_real_text_set
from tools.dedup.minhash import VERIFICATIONS, MinHashDedup, MinHashSettings
from tools.stage import StageConfig, run_corpus_stage
from tools.stage.output import StageOutput

THRESHOLDS = (0.8, 0.85)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--originals", type=int, default=3000,
                        help="originals of the stdlib-sources set (default 3000)")
    parser.add_argument("--real-originals", type=int, default=1000,
                        help="originals of the harder real-prose set (default 1000)")
    parser.add_argument("--num-perm", type=int, default=128)
    parser.add_argument("--signature-docs", type=int, default=500,
                        help="documents on which the signature methods are timed (default 500)")
    parser.add_argument("--datatrove-docs", type=int, default=3000,
                        help="documents of the side-by-side run of the signature and bucket stages (default 3000; "
                             "0: skip)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="workers of the dedup runs")
    parser.add_argument("--seed", type=int, default=0, help="seed of the labelled sets")
    parser.add_argument("--skip-quality", action="store_true", help="no quality runs")
    parser.add_argument("--scale", type=int, nargs="*", default=[], metavar="DOCS",
                        help="also deduplicate synthetic corpora of these sizes (120 words, 10%% near copies), e.g. "
                             "--scale 200000 400000")
    parser.add_argument("--docs-per-task", type=int, default=50_000,
                        help="scale runs: documents per task (the merge's partitions grow with the corpus; "
                             "default 50000)")
    parser.add_argument("--verification-cost", action="store_true",
                        help="scale runs: run the first size again with --verification signature")


def _quality_rows(name: str, labelled: LabelledSet, root: Path, workers: int, num_perm: int) -> list[str]:
    path = root / f"{name}.jsonl"
    labelled.write(path)
    rows = []
    for verification in VERIFICATIONS:
        for threshold in THRESHOLDS:
            output = root / f"{name}-{verification}-{threshold}"
            stage = MinHashDedup(MinHashSettings(threshold=threshold, num_perm=num_perm, verification=verification))
            with contextlib.redirect_stdout(io.StringIO()):  # the stage's own summary table
                manifest = run_corpus_stage(stage, StageConfig((str(path),), output, workers=workers, progress=False))
            removed = {r["id"]: r["details"]["partner_id"] for r in StageOutput.load(output).removed}
            q = evaluate(labelled, removed, threshold)
            lsh = manifest["lsh"]
            rows.append(f"| {name} | J >= {threshold} | {verification} | {q.recall:.4f} | {q.precision:.4f} | "
                        f"{q.removed:,} / {q.should_remove:,} | {lsh['bands']} x {lsh['rows']} |")
    return rows


def run(args: argparse.Namespace) -> int:
    labelled = build_labelled_set(originals=args.originals, seed=args.seed)
    real = build_real_text_set(originals=args.real_originals, seed=args.seed)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, datasketch "
          f"{metadata.version('datasketch')}; {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; load average "
          f"{os.getloadavg()[0]:.1f}\nsets: stdlib sources {len(labelled.documents):,} documents, real prose "
          f"{len(real.documents):,} documents ({sum(0.7 <= j < 0.9 for *_, j in real.pairs)} pairs with J in "
          "[0.7, 0.9))\n")
    texts = [doc["text"] for doc in labelled.documents]
    print(signature_table(texts[:args.signature_docs], args.num_perm), "\n")
    with tempfile.TemporaryDirectory(prefix="qwen-bench-dedup-") as tmp:
        root = Path(tmp)
        if args.datatrove_docs:
            documents = (labelled.documents + real.documents)[:args.datatrove_docs]
            path = root / "side-by-side.jsonl"
            LabelledSet(documents, []).write(path)
            print(side_by_side_table(documents, path), "\n")
        if not args.skip_quality:
            print("| set | truth | verification | recall | precision | removed / should | bands x rows |\n"
                  "|---|---|---|---|---|---|---|")
            for name, found in (("stdlib sources", labelled), ("real prose, edited", real)):
                print("\n".join(_quality_rows(name.split()[0], found, root, args.workers, args.num_perm)), flush=True)
            print()
        runs = []
        for size in args.scale:
            runs.append(scale_run(size, max(1, size // args.docs_per_task), args.workers, root))
            if args.verification_cost and size == args.scale[0]:
                runs.append(scale_run(size, max(1, size // args.docs_per_task), args.workers, root, "signature"))
        if runs:
            print(scale_table(runs))
            print(f"\n{flatness([r for r in runs if r['verification'] == 'exact'])}")
    return 0
