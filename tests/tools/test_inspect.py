"""``qwen-data inspect``: counts, dtype and decoded samples; damaged files named in one line."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.tools.test_tokenize import tokenized  # noqa: F401  (module fixture)
from tools.stage.runner import StageConfig
from tools.tokenize import inspect
from tools.tokenize.cli import tokenize
from tools.tokenize.shard import TokenizerSpec


def run_inspect(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    inspect.add_arguments(parser)
    return inspect.run(parser.parse_args(list(argv)))


@pytest.fixture
def dataset_copy(tokenized, tmp_path):  # noqa: F811
    root, _ = tokenized
    for suffix in (".bin", ".idx"):
        shutil.copy(root / "out" / f"text_document{suffix}", tmp_path / f"data{suffix}")
    return tmp_path / "data"


def test_inspect_prints_counts_dtype_and_decoded_documents(tokenized, capsys):  # noqa: F811
    root, texts = tokenized
    assert run_inspect(str(root / "out" / "text_document"), "--samples", "3") == 0
    out = capsys.readouterr().out
    assert "documents: 5" in out and "tokens:    841" in out and "dtype:     int32" in out
    assert "--- document 2 (" in out and texts[2] in out
    assert texts[0] + "<|endoftext|>" in out


def test_truncated_bin_is_named_in_one_line_by_the_command(dataset_copy):
    bin_path = dataset_copy.with_suffix(".bin")
    bin_path.write_bytes(bin_path.read_bytes()[:-8])
    qwen_data = Path(sys.executable).parent / "qwen-data"  # the installed console script
    result = subprocess.run([str(qwen_data), "inspect", str(dataset_copy)], capture_output=True, text=True,
                            timeout=180)
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert f"{bin_path}: truncated" in result.stderr


def test_index_of_another_dataset_is_named(dataset_copy, tmp_path, capsys):
    other = tmp_path / "other"
    other.mkdir()
    (other / "in.jsonl").write_text('{"text": "short"}\n')
    tokenize(StageConfig((str(other / "in.jsonl"),), other / "out", workers=1, progress=False), TokenizerSpec(),
             "text_document")
    shutil.copy(other / "out" / "text_document.idx", dataset_copy.with_suffix(".idx"))
    capsys.readouterr()
    assert run_inspect(str(dataset_copy)) == 1
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and f"{dataset_copy.with_suffix('.bin')}: longer than its index" in error


def test_missing_dataset_is_named(tmp_path, capsys):
    assert run_inspect(str(tmp_path / "absent")) == 1
    assert f"{tmp_path / 'absent'}.idx: missing" in capsys.readouterr().err
