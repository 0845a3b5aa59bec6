"""``make demo``: raw documents to a trained, exported Qwen and a report, with the product's own commands.

Steps, each one command of the product run as a subprocess with its output in
``RUN/logs/<step>.log``: data (``qwen-data pipeline``), train (``qwen-train`` on two processes under
``torchrun``), export (``qwen-convert to-hf``), generate (``qwen-generate``) and report
(``python -m pretrain.report``). Each step prints one line when it starts and one summary line when
it ends; warning lines in its log are repeated on the console (the known-harmless library ones are
silenced at their source, see pretrain/library_noise.py). A step whose output is complete is
skipped and says so, so a rerun does nothing; delete ``RUN`` to start over. ``RUN/demo.json``
records each step's command and seconds for the report.

Usage (from the repository root; the corpus paths in examples/demo/pipeline.yaml are relative to it):
    python -m pretrain.demo [--run-dir runs/demo] [--train-steps N]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "demo"
PROMPTS = ("def read_config(path):", "Python（派森）语言是一种", "The libffi library provides")
NEW_TOKENS = 32
WARNING_LINE = re.compile(r"warn", re.IGNORECASE)


@dataclass(frozen=True)
class DemoSettings:
    run_dir: Path
    pipeline_config: Path = EXAMPLES / "pipeline.yaml"
    train_config: Path = EXAMPLES / "train.yaml"
    train_steps: int | None = None  # None: the train config's
    processes: int = 2


@dataclass(frozen=True)
class Step:
    name: str
    command: Callable[[DemoSettings], list[str]]
    done: Callable[[DemoSettings], bool]
    summary: Callable[[DemoSettings], str]
    stdout_file: str | None = None  # the command's stdout is this output file, not log lines


def _bin(name: str) -> str:
    """A console script of this environment (the one running the demo), not whatever PATH finds."""
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else name


def _shown(command: list[str]) -> str:
    """The command as a person would type it: program names without their directory, paths
    relative to the current directory."""
    cwd = Path.cwd()
    words = [Path(command[0]).name]
    for word in command[1:]:
        path = Path(word)
        words.append(path.name if word.startswith(str(Path(sys.executable).parent)) else
                     os.path.relpath(path, cwd) if path.is_absolute() and path.is_relative_to(cwd) else word)
    return " ".join(words)


def _json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


# -- data ---------------------------------------------------------------------------------------

def _data_dir(s: DemoSettings) -> Path:
    return s.run_dir / "data"


def _data_command(s: DemoSettings) -> list[str]:
    return [_bin("qwen-data"), "pipeline", "--config", str(s.pipeline_config), "--output", str(_data_dir(s))]


def _data_summary(s: DemoSettings) -> str:
    stages = _json(_data_dir(s) / "pipeline_summary.json")["stages"]
    filters = [stage for stage in stages if stage["stage"] != "tokenize"]
    removed = ", ".join(f"{stage['stage']} {stage['counts']['removed']}" for stage in filters)
    rejected = sum(stage["counts"]["rejected"] for stage in stages)
    tokens = sum(stage["dataset"]["tokens"] for stage in stages if stage["stage"] == "tokenize")
    datasets = sum(stage["stage"] == "tokenize" for stage in stages)
    return (f"{filters[0]['counts']['in']} documents in, {filters[-1]['counts']['kept']} kept (removed: {removed}; "
            f"{rejected} rejected); {tokens:,} tokens in {datasets} datasets")


# -- train --------------------------------------------------------------------------------------

def _train_data(s: DemoSettings) -> dict:
    return _json(_data_dir(s) / "pipeline_summary.json")["qwen_train"]["data"]


def _train_command(s: DemoSettings) -> list[str]:
    data = _train_data(s)
    command = [_bin("torchrun"), "--standalone", f"--nproc-per-node={s.processes}", "--no-python",
               _bin("qwen-train"), "--config", str(s.train_config),
               f"checkpoint.dir={s.run_dir / 'checkpoints'}", f"logging.dir={s.run_dir / 'train'}",
               f"data.prefixes={json.dumps(data['prefixes'])}", f"data.weights={json.dumps(data['weights'])}",
               f"data.cache_dir={s.run_dir / 'train' / 'data_cache'}"]
    if s.train_steps is not None:
        command.append(f"training.train_steps={s.train_steps}")
    return command


def _planned_steps(s: DemoSettings) -> int:
    import yaml

    return s.train_steps or yaml.safe_load(s.train_config.read_text(encoding="utf-8"))["training"]["train_steps"]


def _trained_step(s: DemoSettings) -> int:
    """The step of the checkpoint that ``checkpoints/latest`` names (a file holding its directory name)."""
    latest = s.run_dir / "checkpoints" / "latest"
    state = s.run_dir / "checkpoints" / latest.read_text().strip() / "train_state.json" if latest.is_file() else None
    return _json(state)["step"] if state is not None and state.is_file() else 0


def _metrics(s: DemoSettings) -> list[dict]:
    path = s.run_dir / "train" / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _train_summary(s: DemoSettings) -> str:
    metrics = _metrics(s)
    train = [m for m in metrics if "loss" in m]
    valid = [m for m in metrics if "valid_loss" in m]
    line = (f"{_trained_step(s)} steps on {s.processes} processes: "
            f"loss {train[0]['loss']:.2f} -> {train[-1]['loss']:.2f}")
    if valid:
        line += f", validation loss {valid[-1]['valid_loss']:.2f} (perplexity {valid[-1]['valid_ppl']:,.0f})"
    return line + f", {train[-1]['tokens_per_second']:,.0f} tokens/s, MFU {100 * train[-1]['mfu']:.2f}%"


# -- export, generate, report -------------------------------------------------------------------

def _export_command(s: DemoSettings) -> list[str]:
    # fp32, the precision the demo trains in: transformers' greedy tokens then match qwen-generate's.
    return [_bin("qwen-convert"), "to-hf", str(s.run_dir / "checkpoints"), str(s.run_dir / "hf"), "--dtype", "fp32"]


def _export_summary(s: DemoSettings) -> str:
    files = sorted(p for p in (s.run_dir / "hf").iterdir() if p.is_file())
    size = sum(p.stat().st_size for p in files)
    return f"{s.run_dir / 'hf'}: {len(files)} files, {size / 2**20:.1f} MiB ({', '.join(p.name for p in files)})"


def _generate_command(s: DemoSettings) -> list[str]:
    prompts = s.run_dir / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"text": p}, ensure_ascii=False) + "\n" for p in PROMPTS), encoding="utf-8")
    return [_bin("qwen-generate"), "--checkpoint", str(s.run_dir / "checkpoints"), "--prompt-file", str(prompts),
            "--max-new-tokens", str(NEW_TOKENS)]


def _generate_summary(s: DemoSettings) -> str:
    sample = json.loads((s.run_dir / "sample.jsonl").read_text(encoding="utf-8").splitlines()[0])
    return f"{sample['prompt']!r} -> {sample['completion'][:70]!r}"


def _report_command(s: DemoSettings) -> list[str]:
    return [sys.executable, "-m", "pretrain.report", str(s.run_dir)]


STEPS = (
    Step("data", _data_command, lambda s: (_data_dir(s) / "pipeline_summary.json").is_file(), _data_summary),
    Step("train", _train_command, lambda s: _trained_step(s) >= _planned_steps(s), _train_summary),
    Step("export", _export_command, lambda s: (s.run_dir / "hf" / "tokenizer.json").is_file(), _export_summary),
    Step("generate", _generate_command, lambda s: (s.run_dir / "sample.jsonl").is_file(), _generate_summary,
         stdout_file="sample.jsonl"),
    Step("report", _report_command, lambda s: (s.run_dir / "report.html").is_file(),
         lambda s: f"{s.run_dir / 'report.html'} and report.md"),
)


def _run(step: Step, command: list[str], s: DemoSettings, log: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), "PYTHONUNBUFFERED": "1"}
    output = s.run_dir / step.stdout_file if step.stdout_file else None
    with open(log, "w", encoding="utf-8") as log_file:
        stdout = open(output.with_name(f".{output.name}.tmp"), "w", encoding="utf-8") if output else log_file
        try:
            code = subprocess.run(command, stdout=stdout, stderr=log_file, env=env).returncode
        finally:
            if output:
                stdout.close()
    if code != 0:
        tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-15:]
        raise SystemExit("\n".join([f"demo: {step.name} failed (exit {code}); last lines of {log}:", *tail]))
    if output:
        output.with_name(f".{output.name}.tmp").replace(output)


def _warnings(log: Path) -> list[str]:
    return [line for line in log.read_text(encoding="utf-8", errors="replace").splitlines()
            if WARNING_LINE.search(line)]


def run_demo(settings: DemoSettings) -> None:
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    (settings.run_dir / "logs").mkdir(exist_ok=True)
    record_path = settings.run_dir / "demo.json"
    record = _json(record_path) if record_path.is_file() else {"steps": {}}
    for number, step in enumerate(STEPS, 1):
        prefix = f"[{number}/{len(STEPS)}] {step.name}"
        if step.done(settings):
            print(f"{prefix}: finished in an earlier run, skipped ({step.summary(settings)})", flush=True)
            continue
        log = settings.run_dir / "logs" / f"{step.name}.log"
        command = step.command(settings)
        print(f"{prefix}: {_shown(command)[:200]} (log: {log})", flush=True)
        started = time.perf_counter()
        _run(step, command, settings, log)
        seconds = time.perf_counter() - started
        for line in _warnings(log):
            print(f"    {line}", flush=True)
        record["steps"][step.name] = {"command": command, "seconds": round(seconds, 1)}
        record_path.write_text(json.dumps(record, indent=2), encoding="utf-8")
        print(f"{prefix}: done in {seconds:.0f} s: {step.summary(settings)}", flush=True)


def parse_args(argv=None) -> DemoSettings:
    parser = argparse.ArgumentParser(prog="python -m pretrain.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", type=Path, default=Path("runs/demo"), help="where everything goes (runs/demo)")
    parser.add_argument("--train-steps", type=int, help="override the train config's training.train_steps")
    args = parser.parse_args(argv)
    if shutil.which(_bin("torchrun")) is None:
        parser.error("torchrun not found: run from the project's environment (make demo sets it up)")
    return DemoSettings(run_dir=args.run_dir, train_steps=args.train_steps)


def main(argv=None) -> None:
    settings = parse_args(argv)
    try:
        run_demo(settings)
    except KeyboardInterrupt:  # the step's command got the same SIGINT and ended on its own terms
        raise SystemExit("demo: interrupted; run it again to resume (finished steps are skipped)") from None


if __name__ == "__main__":
    main()
