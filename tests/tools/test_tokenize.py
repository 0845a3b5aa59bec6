"""``qwen-data tokenize``: JSONL/Parquet -> megatron-core indexed dataset, counted and reopened."""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from megatron.core.datasets.indexed_dataset import IndexedDataset

from foundation.tokenizer import get_tokenizer
from tools.tokenize import cli

TEXTS = [
    "Hello world",
    "def add(a, b):\n    return a + b\n",
    "通义千问 🦙 — 12345",
    "  whitespace\n\n\tedge cases  ",
    "A longer document. " * 200,
]


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return cli.run(parser.parse_args(argv))


def write_inputs(root: Path) -> list[str]:
    """Three shards (plain, gzip, Parquet) with a bad line and an empty text; returns the kept texts in order."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "a.jsonl").write_text(
        json.dumps({"id": "a0", "text": TEXTS[0]}) + "\n{broken json\n" + json.dumps({"id": "a1", "text": TEXTS[1]})
        + "\n" + json.dumps({"id": "a2", "text": ""}) + "\n", encoding="utf-8")
    with gzip.open(root / "b.jsonl.gz", "wt", encoding="utf-8") as handle:
        handle.write("".join(json.dumps({"id": f"b{i}", "text": t}) + "\n" for i, t in enumerate(TEXTS[2:4])))
    pq.write_table(pa.table({"id": ["c0"], "text": [TEXTS[4]]}), root / "c.parquet")
    return TEXTS


def documents(prefix: str) -> list[np.ndarray]:
    dataset = IndexedDataset(prefix)
    bounds = dataset.document_indices
    return [np.concatenate([dataset[i] for i in range(bounds[d], bounds[d + 1])]) for d in range(len(bounds) - 1)]


@pytest.fixture(scope="module")
def tokenized(tmp_path_factory):
    root = tmp_path_factory.mktemp("tokenize")
    texts = write_inputs(root / "in")
    assert run_cli(["--input", str(root / "in"), "--output", str(root / "out"), "--workers", "1", "--no-progress"]) == 0
    return root, texts


def test_dataset_reopens_with_manifest_counts_and_decodes_to_the_input(tokenized):
    root, texts = tokenized
    manifest = json.loads((root / "out" / "manifest.json").read_text())
    dataset = manifest["dataset"]
    assert dataset["prefix"] == str(root / "out" / "text_document") and dataset["dtype"] == "int32"
    reopened = IndexedDataset(dataset["prefix"])
    assert len(reopened.document_indices) - 1 == dataset["documents"] == manifest["counts"]["kept"] == len(texts)
    assert int(reopened.sequence_lengths.sum()) == dataset["tokens"]
    tokenizer = get_tokenizer()
    for ids, text in zip(documents(dataset["prefix"]), texts):
        assert ids.dtype == np.int32 and ids[-1] == tokenizer.eod
        assert ids[:-1].tolist() == tokenizer.encode(text)
        assert tokenizer.decode(ids[:-1].tolist()) == text
    assert dataset["tokens"] == sum(len(tokenizer.encode(t)) + 1 for t in texts)


def test_every_input_record_is_accounted_for(tokenized):
    root, _ = tokenized
    counts = json.loads((root / "out" / "manifest.json").read_text())["counts"]
    assert counts == {"in": 7, "kept": 5, "removed": 1, "rejected": 1, "unreadable_files": 0,
                      "removed_by_reason": {"empty_text": 1}}
    [rejected] = [json.loads(line) for p in (root / "out" / "rejected").glob("*") for line in p.read_text().splitlines()]
    assert rejected["file"].endswith("a.jsonl") and rejected["line"] == 2
    [removed] = [json.loads(line) for p in (root / "out" / "removed").glob("*") for line in p.read_text().splitlines()]
    assert removed["id"] == "a2" and removed["reason"] == "empty_text"


def test_no_temporary_files_are_left(tokenized):
    root, _ = tokenized
    assert not [p for p in (root / "out").rglob("*") if p.name.startswith(".tmp-") or p.name.endswith(".tmp")]


def test_rerun_skips_finished_shards_and_rewrites_identical_bytes(tokenized, capsys):
    root, _ = tokenized
    before = (root / "out" / "text_document.bin").read_bytes(), (root / "out" / "text_document.idx").read_bytes()
    stale = root / "out" / ".tmp-text_document-999999.bin"  # as left by a writer killed mid-merge
    stale.write_bytes(b"partial")
    assert run_cli(["--input", str(root / "in"), "--output", str(root / "out"), "--workers", "1", "--no-progress"]) == 0
    assert "3 of 3 shards finished earlier" in capsys.readouterr().err
    assert not stale.exists()
    assert before == ((root / "out" / "text_document.bin").read_bytes(), (root / "out" / "text_document.idx").read_bytes())


def test_hugging_face_tokenizer_json_gives_uint16_tokens(tmp_path):
    from tests.foundation.test_tokenizer import write_small_hf_tokenizer

    write_small_hf_tokenizer(tmp_path / "tokenizer.json")
    (tmp_path / "in.jsonl").write_text(json.dumps({"text": "the quick brown fox"}) + "\n")
    assert run_cli(["--input", str(tmp_path / "in.jsonl"), "--output", str(tmp_path / "out"), "--no-progress",
                    "--tokenizer-json", str(tmp_path / "tokenizer.json"), "--workers", "1"]) == 0
    dataset = json.loads((tmp_path / "out" / "manifest.json").read_text())["dataset"]
    assert dataset["dtype"] == "uint16" and documents(dataset["prefix"])[0][-1] == dataset["eod"] == 0


def test_missing_tokenizer_file_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "in.jsonl").write_text(json.dumps({"text": "x"}) + "\n")
    code = run_cli(["--input", str(tmp_path / "in.jsonl"), "--output", str(tmp_path / "out"),
                    "--tokenizer-file", str(tmp_path / "nope.tiktoken")])
    error = capsys.readouterr().err.strip()
    assert code == 2 and "nope.tiktoken" in error and len(error.splitlines()) == 1


@pytest.mark.slow
def test_two_workers_write_the_same_dataset_as_one(tokenized, tmp_path):
    root, _ = tokenized
    assert run_cli(["--input", str(root / "in"), "--output", str(tmp_path / "out"), "--workers", "2", "--no-progress"]) == 0
    for suffix in (".bin", ".idx"):
        assert (tmp_path / "out" / f"text_document{suffix}").read_bytes() == \
            (root / "out" / f"text_document{suffix}").read_bytes()
