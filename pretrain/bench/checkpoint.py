"""``qwen-bench checkpoint``: saving and loading at three layouts, the sharded format side by side
with the one before it.

Model: Qwen's layer with hidden 1024, 16 heads, ffn 2816 and 2 layers on the real 151,936-row
vocabulary: 337M parameters, fp32, Adam. Four processes (gloo) run three layouts: TP2 x DP2 and
PP2 x DP2 with ZeRO-1, and DP4 with ZeRO-3. For each, one training step (so Adam has moments),
then a synchronous save, an asynchronous one (this tree only), a load under the same layout and a
load under the next layout (TP2xDP2 -> PP2xDP2 -> DP4-ZeRO-3 -> TP2xDP2), each load in fresh
processes. ``--baseline-code DIR`` runs the same steps with the code at DIR (a checkout of the
commit before the sharded format: DeepSpeed's files plus the layout-free ``full/`` copy) in the same
run. Per rank (pretrain/bench/checkpoint_worker.py): seconds, peak host memory above the start of
the operation, and that rank's share of one copy of the state (12 bytes a parameter over the ranks
that share it). Per checkpoint: bytes on disk per parameter.

The projection table applies the same formulas to qwen-7b and qwen-72b at TP8 layouts.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

LAYOUTS = {  # name -> overrides; each loads the checkpoint of the one before it (cyclically) as "other"
    "tp2-dp2-zero1": ["parallel.tp=2", "parallel.zero_stage=1"],
    "pp2-dp2-zero1": ["parallel.pp=2", "parallel.zero_stage=1"],
    "dp4-zero3": ["parallel.zero_stage=3"],
}
PROCESSES = 4
STATE_BYTES_PER_PARAMETER = 12  # fp32 weights (or fp32 master weights) and two Adam moments
MEMORY_SLACK = 512 * 2**20
WORKER = Path(__file__).with_name("checkpoint_worker.py")
PROJECTED = (("qwen-7b", 8, 1, 8), ("qwen-7b", 8, 1, 64), ("qwen-72b", 8, 8, 8), ("qwen-72b", 8, 8, 32))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=16)
    parser.add_argument("--ffn", type=int, default=2816, help="per SwiGLU branch")
    parser.add_argument("--baseline-code", type=Path, metavar="DIR",
                        help="a checkout of the code to compare with (e.g. `git archive 5a7e383 | tar -x -C DIR`)")
    parser.add_argument("--work", type=Path, default=Path("runs/bench-checkpoint"),
                        help="directory for the checkpoints (several GB; emptied first)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write every figure to PATH")


def _overrides(args, layout: str, run_dir: Path, checkpoint: Path, resume: bool) -> list[str]:
    return ["model.preset=qwen-tiny", f"model.hidden_size={args.hidden}", f"model.num_layers={args.layers}",
            f"model.num_attention_heads={args.heads}", f"model.ffn_hidden_size={args.ffn}", "model.seq_length=32",
            "model.kernels=torch",
            "training.micro_batch_size=1", "training.global_batch_size=4", "training.train_steps=10",
            "data.embedded_corpus=true", f"data.cache_dir={args.work / 'data'}", "data.num_workers=0",
            f"logging.dir={run_dir}", "logging.tensorboard=false", f"checkpoint.dir={checkpoint}",
            "checkpoint.keep_last=1",
            f"checkpoint.resume={str(resume).lower()}", *LAYOUTS[layout]]


def _run_worker(code: Path, spec: dict) -> list[dict]:
    env = {**os.environ, "PYTHONPATH": str(code), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={PROCESSES}",
               str(WORKER), json.dumps(spec)]
    out = Path(spec["out"])
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "worker.log", "w") as log:
        done = subprocess.run(command, env=env, cwd=code, stdout=log, stderr=subprocess.STDOUT, text=True)
    if done.returncode:
        raise RuntimeError(f"qwen-bench checkpoint: worker failed ({spec['mode']}), see {out / 'worker.log'}")
    return [json.loads((out / f"rank_{rank}.json").read_text()) for rank in range(PROCESSES)]


def _tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _parameters(args) -> int:
    from pretrain.config import load_config
    from pretrain.model.builder import count_parameters

    model = load_config(None, _overrides(args, "dp4-zero3", Path("."), Path("."), False)).model
    return count_parameters(model)["total"]


def measure_code(args, name: str, code: Path, sharded_format: bool) -> dict:
    """Every figure of one code version, by layout."""
    root = args.work / name
    layouts = list(LAYOUTS)
    figures = {}
    for layout in layouts:
        checkpoint = root / layout / "ckpt"
        overrides = _overrides(args, layout, root / layout / "save", checkpoint, resume=False)
        spec = {"mode": "save", "out": str(root / layout / "save-figures"),
                "overrides": overrides + (["checkpoint.async_save=false"] if sharded_format else [])}
        if sharded_format:
            spec["async_dir"] = str(root / layout / "ckpt-async")
        print(f"qwen-bench checkpoint: {name}: {layout}: train a step, save", file=sys.stderr, flush=True)
        ranks = _run_worker(code, spec)
        step = next(checkpoint.glob("step_*"))
        figures[layout] = {"save": ranks, "disk_bytes": _tree_bytes(step)}
        if sharded_format:
            shutil.rmtree(root / layout / "ckpt-async")
    for index, layout in enumerate(layouts):
        source = layouts[index - 1]
        for kind, saved_by in (("load_same", layout), ("load_other", source)):
            print(f"qwen-bench checkpoint: {name}: {layout}: load the {saved_by} checkpoint", file=sys.stderr,
                  flush=True)
            spec = {"mode": "load", "out": str(root / layout / f"{kind}-figures"),
                    "overrides": _overrides(args, layout, root / layout / kind, root / saved_by / "ckpt", resume=True)}
            figures[layout][kind] = {"from": saved_by, "ranks": _run_worker(code, spec)}
    return figures


def _gib(value: float) -> str:
    return f"{value / 2**30:.2f}"


def _worst(ranks: list[dict], *path: str) -> float:
    """The largest value at ``path`` over the ranks (0 where a rank has none); of a save measured
    more than once, the last (the first of a run also plans it)."""
    def value(rank):
        for key in path:
            rank = rank.get(key, {})
            rank = rank[-1] if isinstance(rank, list) else rank
        return rank or 0
    return max(value(rank) for rank in ranks)


def _memory(memory: float, shard: float) -> str:
    return f"{_gib(memory)} ({memory / shard:.2f}x)"


def _load_cells(ranks: list[dict]) -> tuple[float, float, float]:
    """(seconds, peak memory above start, that rank's share) of the slowest/largest rank."""
    seconds = max(r.get("weights", {}).get("seconds", 0) + r.get("optimizer", {}).get("seconds", 0) for r in ranks)
    memory = max(_worst(ranks, "weights", "memory"), _worst(ranks, "optimizer", "memory"))
    return seconds, memory, _worst(ranks, "shard_bytes")


def _async_cells(ranks: list[dict], sync: float, shard: float) -> tuple[str, str]:
    if "async" not in ranks[0]:
        return "-", "-"
    blocking = _worst(ranks, "async", "blocking_seconds")
    timing = (f"{blocking:.2f} ({100 * blocking / sync:.0f}%) / {_worst(ranks, 'async', 'seconds'):.1f} / "
              f"{_worst(ranks, 'async', 'step_seconds_while_writing'):.1f} ({_worst(ranks, 'step_seconds'):.1f})")
    return timing, _memory(_worst(ranks, "async", "memory"), shard)


def report(figures: dict, parameters: int) -> list[str]:
    lines = ["| code | layout | rank share of the state (GiB) | sync save s | save memory GiB (x share) | "
             "async: blocking s (of sync) / done s / step while writing s (alone) | async memory GiB (x share) | "
             "bytes on disk per parameter | load, same layout: s, memory GiB (x share) | load, previous layout's "
             "checkpoint: s, memory GiB (x share) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for code, layouts in figures.items():
        for layout, measured in layouts.items():
            ranks = measured["save"]
            shard, sync = _worst(ranks, "shard_bytes"), _worst(ranks, "sync", "seconds")
            async_timing, async_memory = _async_cells(ranks, sync, shard)
            loads = []
            for kind in ("load_same", "load_other"):
                seconds, memory, load_shard = _load_cells(measured[kind]["ranks"])
                loads.append(f"{seconds:.1f}, {_memory(memory, load_shard)}")
            lines.append(f"| {code} | {layout} | {_gib(shard)} | {sync:.1f} | "
                         f"{_memory(_worst(ranks, 'sync', 'memory'), shard)} | {async_timing} | {async_memory} | "
                         f"{measured['disk_bytes'] / parameters:.2f} | {loads[0]} | {loads[1]} |")
    return lines


def projection() -> list[str]:
    """Per-rank and per-checkpoint bytes of both formats at production layouts, from the formulas the
    measured rows check: sharded, each rank writes and reads its share 12 P / (TP x PP x DP) and holds
    a copy of it while writing; full/, one rank per pipeline stage gathers 12 P / PP, and disk holds
    DeepSpeed's files (bf16 weights 2 P, fp32 master and moments 12 P) plus full/ (12 P)."""
    from pretrain.config import load_config
    from pretrain.model.builder import count_parameters

    lines = ["| model | layout (GPUs) | parameters | sharded: per-rank share = save copy (GiB) | sharded: disk (GB) | "
             "full/: gathered on one rank per stage (GiB) | full/ + DeepSpeed: disk (GB) |",
             "|---|---|---|---|---|---|---|"]
    for preset, tp, pp, dp in PROJECTED:
        total = count_parameters(load_config(None, [f"model.preset={preset}"]).model)["total"]
        world = tp * pp * dp
        state = STATE_BYTES_PER_PARAMETER * total
        lines.append(f"| {preset} | TP{tp} x PP{pp} x DP{dp} ({world}) | {total / 1e9:.2f}B | {_gib(state / world)} | "
                     f"{state / 1e9:.0f} | {_gib(state / pp)} | {(2 + 12 + 12) * total / 1e9:.0f} |")
    return lines


def _within_memory_bound(memory: float, shard: float) -> bool:
    return memory <= 1.5 * shard + MEMORY_SLACK


def acceptance(figures: dict, parameters: int) -> list[str]:
    """The acceptance bounds, checked rank by rank on the sharded format's measurements."""
    lines = []
    for layout, measured in figures.get("sharded", {}).items():
        ranks, loads = measured["save"], measured["load_other"]["ranks"]
        blocking = _worst(ranks, "async", "blocking_seconds") / _worst(ranks, "sync", "seconds")
        disk = measured["disk_bytes"] / (STATE_BYTES_PER_PARAMETER * parameters)
        checks = {
            "save memory <= 1.5 x share + 512 MiB on every rank": all(
                _within_memory_bound(max(_worst([r], "sync", "memory"), _worst([r], "async", "memory")),
                                     r["shard_bytes"]) for r in ranks),
            "cross-layout load memory <= 1.5 x share + 512 MiB on every rank": all(
                _within_memory_bound(max(r["weights"]["memory"], r["optimizer"]["memory"]), r["shard_bytes"])
                for r in loads),
            f"disk {disk:.3f} x one copy <= 1.1": disk <= 1.1,
            f"async blocking {100 * blocking:.1f}% of sync <= 10%": blocking <= 0.1}
        lines.append(f"- {layout}: " + "; ".join(f"{name}: {'yes' if ok else 'NO'}" for name, ok in checks.items()))
    return lines


def run(args: argparse.Namespace) -> int:
    here = Path(__file__).resolve().parents[2]
    shutil.rmtree(args.work, ignore_errors=True)
    args.work = args.work.resolve()
    parameters = _parameters(args)
    figures = {"sharded": measure_code(args, "sharded", here, sharded_format=True)}
    if args.baseline_code:
        try:
            figures["full/ (baseline)"] = measure_code(args, "baseline", args.baseline_code.resolve(),
                                                       sharded_format=False)
        except RuntimeError as error:  # the old format gathers a stage on one rank: it can run out of memory
            print(f"{error}; the baseline is left out of the table", file=sys.stderr)
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"qwen-bench checkpoint: {parameters:,} parameters, fp32 + Adam, {PROCESSES} processes (gloo), "
          f"{platform.machine()} {os.cpu_count()} CPUs, {when}; seconds and memory of the slowest/largest rank\n")
    print("\n".join(report(figures, parameters)))
    print("\nAcceptance (sharded format):")
    print("\n".join(acceptance(figures, parameters)))
    print("\nProjection (formulas above, bf16 training):")
    print("\n".join(projection()))
    if args.json:
        args.json.write_text(json.dumps({"parameters": parameters, "date": when, "figures": figures}, indent=1))
    return 0
