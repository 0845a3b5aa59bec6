"""The demo end to end, reduced (few training steps; the same stages and two-process layout): raw
corpus -> qwen-data pipeline -> qwen-train (DP=2, ZeRO-2, fused kernels) -> qwen-convert to-hf ->
qwen-generate -> report; then the export in transformers, offline, and the report in Chromium.
One run of about 3-4 minutes on 2 cores, shared by every test here."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.browser import ensure_chromium, open_page

REPO = Path(__file__).resolve().parents[1]
TRAIN_STEPS = 20
MIXED_TEXTS = [
    "Hello world",
    "通义千问是阿里云研发的大规模语言模型。你好，世界！",
    "def fib(n: int) -> int:\n\tif n < 2:\n\t\treturn n\n    return fib(n - 1) + fib(n-2)  # slow\n\n",
    "Digits 1234567890, 3.14159 and 2024-11-20; 中文数字 42 个",
    "  mixed   whitespace \r\n\r\n and émigrés ❤️ 🦙",
]

pytestmark = pytest.mark.slow


def _demo(run_dir: Path) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key not in ("RANK", "WORLD_SIZE", "MASTER_PORT")}
    return subprocess.run([sys.executable, "-m", "pretrain.demo", "--run-dir", str(run_dir),
                           "--train-steps", str(TRAIN_STEPS)], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=1500)


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    run_dir = tmp_path_factory.mktemp("demo") / "run"
    done = _demo(run_dir)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return run_dir, done


def test_each_step_announces_itself_and_ends_with_one_summary_line(demo):
    _, done = demo
    lines = done.stdout.splitlines()
    for number, step in enumerate(("data", "train", "export", "generate", "report"), 1):
        assert sum(line.startswith(f"[{number}/5] {step}: ") for line in lines) == 2, done.stdout
        assert any(line.startswith(f"[{number}/5] {step}: done in ") for line in lines)
    for noise in ("legacy tokenizer", "cuda_graph_scope", "built successfully", "Unknown MLP type"):
        assert noise not in done.stdout + done.stderr
        for log in (demo[0] / "logs").glob("*.log"):
            assert noise not in log.read_text(), log


def test_counts_add_up_and_the_leak_and_the_malformed_line_are_accounted_for(demo):
    run_dir, _ = demo
    stages = json.loads((run_dir / "data" / "pipeline_summary.json").read_text())["stages"]
    for stage in stages:
        counts = stage["counts"]
        assert counts["in"] == counts["kept"] + counts["removed"] + counts["rejected"], stage
    filters = [stage for stage in stages if stage["stage"] != "tokenize"]
    for before, after in zip(filters, filters[1:]):
        assert after["counts"]["in"] == before["counts"]["kept"]
    assert {"exact_duplicate", "near_duplicate"} <= {r for s in stages for r in s["counts"]["removed_by_reason"]}
    [leak] = [line for line in (run_dir / "data" / "decontaminate" / "removed").glob("*.jsonl") if line.stat().st_size]
    removal = json.loads(leak.read_text().splitlines()[0])
    assert removal["reason"] == "benchmark_overlap" and "humaneval:HumanEval/12" in removal["details"]["items"]
    [rejected] = [json.loads(line) for path in (run_dir / "data" / "clean" / "rejected").glob("*.jsonl")
                  for line in path.read_text().splitlines()]
    assert rejected["file"].endswith("web.jsonl") and rejected["line"] == 8 and "malformed JSON" in rejected["error"]
    report = (run_dir / "report.md").read_text()
    assert "HumanEval/12" in report and "benchmark_overlap" in report
    assert "examples/demo/corpus/web.jsonl | 8 | malformed JSON" in report


def test_the_loss_falls_and_validation_is_reported(demo):
    run_dir, _ = demo
    metrics = [json.loads(line) for line in (run_dir / "train" / "metrics.jsonl").read_text().splitlines()]
    losses = [m["loss"] for m in metrics if "loss" in m]
    assert losses[-1] < losses[0] - 0.5, losses
    assert any("valid_ppl" in m for m in metrics)
    latest = (run_dir / "checkpoints" / "latest").read_text().strip()
    config = (run_dir / "checkpoints" / latest / "config.yaml").read_text()
    assert "zero_stage: 2" in config and "kernels: fused" in config


def test_a_rerun_skips_every_finished_step(demo):
    run_dir, _ = demo
    again = _demo(run_dir)
    assert again.returncode == 0, again.stderr[-3000:]
    lines = again.stdout.splitlines()
    assert len(lines) == 5 and all("finished in an earlier run, skipped" in line for line in lines), again.stdout


def test_the_export_loads_offline_with_the_ids_of_qwen_data_tokenize(demo, tmp_path):
    from megatron.core.datasets.indexed_dataset import IndexedDataset
    from transformers import AutoTokenizer

    run_dir, _ = demo
    source = tmp_path / "mixed.jsonl"
    source.write_text("".join(json.dumps({"id": str(i), "text": t}) + "\n" for i, t in enumerate(MIXED_TEXTS)))
    done = subprocess.run([Path(sys.executable).parent / "qwen-data", "tokenize", "--input", str(source),
                           "--output", str(tmp_path / "tokens")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    dataset = IndexedDataset(str(tmp_path / "tokens" / "text_document"))
    tokenizer = AutoTokenizer.from_pretrained(run_dir / "hf", local_files_only=True)
    for index, text in enumerate(MIXED_TEXTS):
        ids = tokenizer(text)["input_ids"]
        assert ids + [tokenizer.eos_token_id] == dataset[index].tolist(), text
        assert tokenizer.decode(ids) == text
    assert tokenizer.eos_token_id == tokenizer.pad_token_id == 151643 and tokenizer.bos_token_id is None
    assert tokenizer.convert_tokens_to_ids(["<|im_start|>", "<|im_end|>", "<|extra_204|>"]) == [151644, 151645, 151850]


def test_greedy_generation_in_transformers_equals_qwen_generate(demo):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run_dir, _ = demo
    samples = [json.loads(line) for line in (run_dir / "sample.jsonl").read_text().splitlines()]
    assert len(samples) == 3  # code, Chinese and English prompts
    tokenizer = AutoTokenizer.from_pretrained(run_dir / "hf", local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(run_dir / "hf", local_files_only=True, dtype=torch.float32)
    for sample in samples:
        prompt = tokenizer(sample["prompt"], return_tensors="pt")
        output = model.generate(**prompt, do_sample=False, max_new_tokens=len(sample["completion_ids"]))
        new_ids = output[0, prompt["input_ids"].shape[1]:].tolist()
        assert len(sample["completion_ids"]) > 0
        assert new_ids == sample["completion_ids"], sample["prompt"]
        assert tokenizer.decode(new_ids) == sample["completion"]


def test_the_report_renders_in_chromium_without_errors_and_every_chart_decodes(demo, tmp_path):
    chromium = ensure_chromium()
    if chromium is None:
        pytest.skip("no Chromium: install Debian's chromium package (.ci/run does)")
    run_dir, _ = demo
    page = open_page(chromium, run_dir / "report.html", tmp_path / "profile")
    assert page.errors == []
    assert len(page.images) >= 6
    assert all(image["decoded"] and image["width"] > 100 and image["height"] > 50 for image in page.images), page.images
    assert page.screenshot.startswith(b"\x89PNG") and len(page.screenshot) > 50_000
    (run_dir / "report-screenshot.png").write_bytes(page.screenshot)
    html = (run_dir / "report.html").read_text()
    # Self-contained: nothing to fetch (URLs quoted in document excerpts are text, not links).
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
