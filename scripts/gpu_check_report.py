"""Gathers scripts/gpu_check.sh's step outputs in WORK into one JSON, OUT/gpu_check.json, and
prints it: each step's exit status and seconds, the GPU, the kernel tests' summary, the training
smokes' losses and checkpoint lines, the attention backend and kernels the runs said they used,
qwen-bench train's figures and qwen-bench kernels' table rows."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path


def text(out: Path, name: str) -> str:
    path = out / f"{name}.out"
    return path.read_text(errors="replace") if path.exists() else ""


def table_rows(output: str) -> list[dict]:
    """The rows of the first markdown table whose header starts with '| op |'."""
    lines = output.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("| op |"):
            header = [cell.strip() for cell in line.strip("|").split("|")]
            rows = []
            for row in lines[i + 2:]:
                if not row.startswith("|"):
                    break
                rows.append(dict(zip(header, (cell.strip() for cell in row.strip("|").split("|")))))
            return rows
    return []


def main(work: Path, out: Path) -> int:
    steps = [json.loads(line) for line in (work / "steps.jsonl").read_text().splitlines() if line.strip()]
    report: dict = {"steps": {s["step"]: {"status": s["status"], "seconds": s["seconds"]} for s in steps}}
    try:
        report["environment"] = json.loads(text(work, "environment").strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        report["environment"] = None
    summary = re.findall(r"^=*\s*(\d+ passed.*?|\d+ failed.*?)\s*=*$", text(work, "kernels_tests"), re.MULTILINE)
    report["kernels_tests"] = summary[-1] if summary else None
    smokes = {}
    for name in ("train_bf16_save", "train_bf16_resume_same_layout", "train_bf16_resume_cross_layout"):
        output = text(work, name)
        smokes[name] = {
            "losses": [float(v) for v in re.findall(r"\| loss ([\d.]+)", output)],
            "checkpoint": [line for line in output.splitlines() if line.startswith("checkpoint:")],
            "said": [line for line in output.splitlines() if re.match(r"(attention|kernels)\b", line)],
        }
    report["training_smokes"] = smokes
    bench = out / "bench_train.json"
    report["bench_train"] = json.loads(bench.read_text()) if bench.exists() else None
    kernels = text(work, "bench_kernels")
    copy = re.search(r"copy bandwidth .*?: ([\d.]+) GB/s", kernels)
    report["bench_kernels"] = {"copy_gb_per_s": float(copy.group(1)) if copy else None, "rows": table_rows(kernels)}
    (out / "gpu_check.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))
    return 0 if all(s["status"] == 0 for s in steps) else 1


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
