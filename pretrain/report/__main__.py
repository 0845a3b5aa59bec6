"""``python -m pretrain.report RUN_DIR``: RUN_DIR/report.html and report.md from the run's files."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pretrain.report.artefacts import read_run
from pretrain.report.render import write_report
from pretrain.report.sections import build_sections


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pretrain.report", description=__doc__)
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR",
                        help="a demo run directory (data/, train/, checkpoints/, hf/, sample.jsonl)")
    args = parser.parse_args(argv)
    summary = args.run_dir / "data" / "pipeline_summary.json"
    if not summary.is_file():
        print(f"report: error: {summary}: no data pipeline summary (run the data step first)", file=sys.stderr)
        return 2
    html, markdown = write_report(args.run_dir, f"Run report: {args.run_dir}", build_sections(read_run(args.run_dir)))
    print(f"report: wrote {html} and {markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
