"""An impossible parallel layout fails at start-up: one line naming the problem, exit code 2, and
no process group is ever created (every rank fails alike, before any rendezvous)."""

from __future__ import annotations

import pytest
import torch.distributed

from pretrain.cli.train import run as qwen_train

# qwen-tiny: 2 layers, hidden 64, 4 heads, ffn 176 per branch.
INVALID_LAYOUTS = {
    "tp does not divide heads": (8, ["parallel.tp=8"], "parallel.tp 8 does not divide model.num_attention_heads (4)"),
    "tp does not divide ffn": (2, ["parallel.tp=2", "model.ffn_hidden_size=177"],
                               "parallel.tp 2 does not divide model.ffn_hidden_size (177)"),
    "pp does not divide layers": (3, ["parallel.pp=3"], "parallel.pp 3 does not divide model.num_layers (2)"),
    "world size not tp x pp x dp": (3, ["parallel.tp=2"],
                                    "world size 3 is not a multiple of parallel.tp x parallel.pp = 2 x 1 = 2"),
    "zero-2 with pp": (2, ["parallel.pp=2", "parallel.zero_stage=2"],
                       "parallel.zero_stage 2 with parallel.pp 2: DeepSpeed's ZeRO-2/3 partition gradients"),
    "zero-3 with pp": (4, ["parallel.pp=2", "parallel.zero_stage=3"],
                       "parallel.zero_stage 3 with parallel.pp 2: DeepSpeed's ZeRO-2/3 partition gradients"),
    "batch not divisible by dp": (8, ["training.micro_batch_size=1", "training.global_batch_size=4"],
                                  "training.global_batch_size 4 is not a multiple of training.micro_batch_size x "
                                  "data-parallel size = 1 x 8 = 8"),
    "flash-attn in fp32": (1, ["model.attention_backend=flash", "training.precision=fp32"],
                           "model.attention_backend flash needs training.precision bf16"),
    "empty ZeRO bucket": (1, ["parallel.zero_reduce_bucket_size=0"],
                          "parallel.zero_reduce_bucket_size must be positive, got 0"),
    "negative loader workers": (1, ["data.num_workers=-1"], "data.num_workers must not be negative, got -1"),
}


@pytest.fixture
def no_rendezvous(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a process group was initialized before the layout was validated")

    monkeypatch.setattr(torch.distributed, "init_process_group", refuse)


@pytest.mark.parametrize("case", list(INVALID_LAYOUTS))
def test_invalid_layout_is_one_line_and_exit_2_before_rendezvous(case, monkeypatch, capsys, no_rendezvous):
    world_size, overrides, message = INVALID_LAYOUTS[case]
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", str(world_size))
    assert qwen_train(["data.embedded_corpus=true", *overrides]) == 2
    lines = capsys.readouterr().err.splitlines()
    errors = [line for line in lines if line.startswith("qwen-train: error:")]
    assert len(errors) == 1 and message in errors[0], lines


def test_zero_with_pipeline_refusal_says_what_to_use(monkeypatch, capsys, no_rendezvous):
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert qwen_train(["data.embedded_corpus=true", "parallel.pp=2", "parallel.zero_stage=3"]) == 2
    assert "use zero_stage <= 1 with pp > 1, or pp 1" in capsys.readouterr().err
