"""The pipeline's two acceptance checks for resuming:

- killed by SIGTERM, then SIGINT, then SIGKILL in three different stages, it finishes with output
  byte-identical to an uninterrupted run, and no process of any killed run is left;
- rerun after an input changed (a line added, a file added, a file deleted, a benchmark edited),
  it equals a fresh run into a new directory.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.tools.test_pipeline import dataset_bytes, module_docstrings, run_cli

QWEN_DATA = Path(sys.executable).parent / "qwen-data"
FILTER_STAGES = ("clean", "exact_dedup", "fuzzy_dedup", "decontaminate")


def append_line(path: Path, record: dict) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")


def write_corpus(root: Path) -> tuple[Path, Path]:
    """Two sources (a directory of six shards with an exact copy, and one more file) and a local
    benchmark whose item is one of the documents; returns (pipeline YAML, benchmark file)."""
    docs = module_docstrings()
    names = sorted(docs)
    modules = root / "modules"
    modules.mkdir()
    for shard in range(6):
        chosen = names[shard::8]
        (modules / f"part-{shard}.jsonl").write_text(
            "".join(json.dumps({"id": name, "text": docs[name]}) + "\n" for name in chosen))
    append_line(modules / "part-0.jsonl", {"id": "copy", "text": docs[names[8]]})
    (root / "more.jsonl").write_text("".join(json.dumps({"id": f"more-{name}", "text": docs[name]}) + "\n"
                                             for name in names[6::8]))
    bench = root / "bench.jsonl"
    bench.write_text(json.dumps({"id": "q1", "text": docs[names[16]]}) + "\n")
    config = {"workers": 2,
              "sources": [{"name": "modules", "inputs": [str(modules)], "weight": 0.6},
                          {"name": "more", "inputs": [str(root / "more.jsonl")], "weight": 0.4}],
              "stages": {"clean": {"languages": ["en"]}, "exact_dedup": {}, "fuzzy_dedup": {},
                         "decontaminate": {"benchmarks": [f"bench={bench}"], "mode": "drop-document"},
                         "tokenize": {}}}
    path = root / "pipeline.yaml"
    path.write_text(yaml.safe_dump(config))
    return path, bench


def results(output: Path) -> dict[str, object]:
    """What a run produced, independent of where: datasets, and per stage the kept documents in
    order, the removed ids with reasons, and the counts."""
    summary = json.loads((output / "pipeline_summary.json").read_text())
    found: dict[str, object] = dict(dataset_bytes(output))
    for stage in FILTER_STAGES:
        record = json.loads((output / ".pipeline" / f"{stage}.json").read_text())
        found[f"{stage} kept"] = [Path(f["path"]).read_text() for f in record["outputs"]]
        found[f"{stage} removed"] = sorted((r["id"], r["reason"]) for p in (output / stage / "removed").glob("*.jsonl")
                                           for r in map(json.loads, p.read_text().splitlines()))
    found["counts"] = [(s["stage"], s.get("source"), s["counts"]) for s in summary["stages"]]
    return found


def descendants(pid: int) -> set[int]:
    """Every living process below ``pid``, from the process table."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z":
                parents[int(entry.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pids: set[int]) -> set[int]:
    living = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            living.add(pid)
    return living


def interrupted_stage(output: Path) -> str:
    return next(stage for stage in FILTER_STAGES if not (output / ".pipeline" / f"{stage}.json").exists())


def interrupt(config: Path, output: Path, stage: str, sig: signal.Signals) -> tuple[int, str, set[int]]:
    """Start the pipeline, wait until ``stage`` runs with its workers, send ``sig``; returns the
    exit code, stderr and the processes that were the run's children."""
    process = subprocess.Popen([str(QWEN_DATA), "pipeline", "--config", str(config), "--output", str(output),
                                "--no-progress"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    deadline = time.monotonic() + 300
    children: set[int] = set()
    while process.poll() is None and time.monotonic() < deadline:
        if (output / stage / ".run.json").exists():
            children = descendants(process.pid)
            if len(children) >= 2:  # the stage's worker pool is up
                break
        time.sleep(0.01)
    assert process.poll() is None, f"the run ended before {stage} could be interrupted"
    if sig == signal.SIGKILL:
        os.kill(process.pid, sig)  # the parent alone: its workers must notice by themselves
    else:
        os.killpg(process.pid, sig)  # as a terminal (Ctrl-C) or SLURM delivers it: to every process
    _, err = process.communicate(timeout=120)
    for _ in range(100):
        if not alive(children):
            break
        time.sleep(0.05)
    return process.returncode, err, children


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    config, bench = write_corpus(root)
    assert run_cli("--config", str(config), "--output", str(root / "reference")) == 0
    return root, config, bench


@pytest.mark.slow
def test_sigterm_sigint_sigkill_in_three_stages_then_resume_matches_an_uninterrupted_run(corpus, tmp_path):
    root, config, _ = corpus
    output = tmp_path / "killed"
    interrupted_in = []
    for stage, sig, expected in (("clean", signal.SIGTERM, 143), ("exact_dedup", signal.SIGINT, 130),
                                 ("decontaminate", signal.SIGKILL, -9)):
        code, err, children = interrupt(config, output, stage, sig)
        assert code == expected, err
        assert children and not alive(children), f"{sig.name}: processes {alive(children)} outlived the run"
        assert "Traceback" not in err
        interrupted_in.append(interrupted_stage(output))
        if sig != signal.SIGKILL:  # a SIGKILLed parent says nothing and may leave temporaries
            last = err.strip().splitlines()[-1]
            assert last.startswith("qwen-data pipeline: interrupted: ") and \
                last.endswith(" shards finished; rerun the same command to resume"), err
            assert not temporaries(output)
    assert len(set(interrupted_in)) == 3, interrupted_in
    assert run_cli("--config", str(config), "--output", str(output)) == 0
    assert not temporaries(output)
    assert results(output) == results(root / "reference")


def temporaries(output: Path) -> list[Path]:
    return [p for p in output.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".tmp-")]


@pytest.mark.slow
def test_a_rerun_after_each_input_change_equals_a_fresh_run(corpus, tmp_path, capsys):
    root, config, _ = corpus
    changed = tmp_path / "changed"
    shutil.copytree(root / "modules", tmp_path / "modules")
    for name in ("more.jsonl", "bench.jsonl"):
        shutil.copy(root / name, tmp_path / name)
    config = tmp_path / "pipeline.yaml"
    config.write_text((root / "pipeline.yaml").read_text().replace(str(root), str(tmp_path)))
    assert run_cli("--config", str(config), "--output", str(changed)) == 0
    docs = module_docstrings()
    names = sorted(docs)
    changes = {
        "line added": lambda: append_line(tmp_path / "modules" / "part-3.jsonl", {"id": "added", "text": docs[names[7]]}),
        "file added": lambda: (tmp_path / "modules" / "part-2b.jsonl").write_text(
            json.dumps({"id": "new-file", "text": docs[names[5]]}) + "\n"),
        "file deleted": lambda: (tmp_path / "modules" / "part-1.jsonl").unlink(),
        "benchmark edited": lambda: (tmp_path / "bench.jsonl").write_text(
            json.dumps({"id": "q1", "text": docs[names[24]]}) + "\n"),
    }
    for number, (change, apply) in enumerate(changes.items()):
        before = results(changed)
        apply()
        capsys.readouterr()
        assert run_cli("--config", str(config), "--output", str(changed)) == 0, change
        assert "its inputs changed since the earlier run; running again" in capsys.readouterr().err, change
        assert run_cli("--config", str(config), "--output", str(tmp_path / f"fresh-{number}")) == 0, change
        after = results(changed)
        assert after == results(tmp_path / f"fresh-{number}"), change
        assert after != before, change
