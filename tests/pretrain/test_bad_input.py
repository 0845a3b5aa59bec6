"""Bad configuration and data: one clear line naming the file or field, exit code 2."""

from __future__ import annotations

import json
import shutil

import pytest

from pretrain.cli.train import run as qwen_train


def error_lines(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("qwen-train: error:")]


def test_unknown_config_key_names_the_file_and_key(tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text("training:\n  train_step: 10\n")
    assert qwen_train(["--config", str(config), "--check"]) == 2
    [line] = error_lines(capsys)
    assert str(config) in line and "training.train_step: unknown option" in line


def test_wrongly_typed_value_names_the_field(capsys):
    assert qwen_train(["--check", "data.embedded_corpus=true", "training.micro_batch_size=four"]) == 2
    [line] = error_lines(capsys)
    assert "training.micro_batch_size: expected int, got 'four'" in line


def test_impossible_batch_setting_is_one_line(capsys):
    assert qwen_train(["--check", "data.embedded_corpus=true", "training.micro_batch_size=3",
                       "training.global_batch_size=8"]) == 2
    [line] = error_lines(capsys)
    assert "training.global_batch_size 8 is not a multiple of training.micro_batch_size" in line


def test_every_problem_gets_its_own_line(capsys):
    assert qwen_train(["--check", "model.num_attention_heads=3", "parallel.pp=3", "training.train_steps=0"]) == 2
    lines = error_lines(capsys)
    assert any("not divisible by model.num_attention_heads 3" in line for line in lines)
    assert any("parallel.pp 3 does not divide model.num_layers" in line for line in lines)
    assert any("training.train_steps must be positive" in line for line in lines)
    assert any("data.prefixes is empty" in line for line in lines)


def test_missing_data_prefix_names_the_file(tmp_path, capsys):
    prefix = tmp_path / "absent"
    assert qwen_train(["--check", f"data.prefixes=[{prefix}]"]) == 2
    [line] = error_lines(capsys)
    assert f"{prefix}.idx: missing" in line


@pytest.fixture
def copied_prefix(corpus_prefixes, tmp_path) -> str:
    prefix = tmp_path / "docs"
    for suffix in (".bin", ".idx"):
        shutil.copy(corpus_prefixes[0] + suffix, str(prefix) + suffix)
    return str(prefix)


@pytest.mark.parametrize("suffix, keep_bytes, message", [
    (".bin", 1000, ".bin: truncated (1000 bytes"),
    (".idx", 100, ".idx: truncated index"),
])
def test_truncated_dataset_file_is_named(copied_prefix, capsys, suffix, keep_bytes, message):
    with open(copied_prefix + suffix, "r+b") as handle:
        handle.truncate(keep_bytes)
    assert qwen_train(["--check", f"data.prefixes=[{copied_prefix}]"]) == 2
    [line] = error_lines(capsys)
    assert f"{copied_prefix}{message}" in line


def test_valid_config_passes_the_check(copied_prefix, capsys):
    assert qwen_train(["--check", f"data.prefixes={json.dumps([copied_prefix])}"]) == 0
    assert "valid" in capsys.readouterr().out


def test_a_setting_outside_its_choices_names_them(capsys):
    assert qwen_train(["--check", "data.embedded_corpus=true", "parallel.recompute=some"]) == 2
    [line] = error_lines(capsys)
    assert "parallel.recompute is 'some'; choose one of none, selective, full" in line


def test_a_dataset_too_small_for_the_validation_split_is_named_not_left_to_hang(tmp_path, capsys):
    """11 documents at data.split 98,2,0 give validation round(0.22) = 0 documents, for which
    megatron-core's GPTDataset would look for samples forever."""
    import numpy as np
    import torch
    from megatron.core.datasets.indexed_dataset import IndexedDatasetBuilder

    prefix = str(tmp_path / "small")
    builder = IndexedDatasetBuilder(prefix + ".bin", dtype=np.int32)
    for document in range(11):
        builder.add_item(torch.arange(document, document + 40, dtype=torch.int32))
        builder.end_document()
    builder.finalize(prefix + ".idx")
    assert qwen_train(["--check", f"data.prefixes=[{prefix}]"]) == 2
    [line] = error_lines(capsys)
    assert f"{prefix}: its 11 documents leave the validation split of data.split 98,2,0 empty" in line
    assert qwen_train(["--check", f"data.prefixes=[{prefix}]", "data.split=90,10,0"]) == 0

