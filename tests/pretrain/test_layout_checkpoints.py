"""A checkpoint saved under one layout resumes under another, and training continues exactly as
the uninterrupted single-process run (model, Adam moments, schedule and data position carry over).

One chain of hops through a single checkpoint directory, each hop a different layout resuming
the previous hop's last checkpoint: single -> TP2xPP2 -> single (the acceptance pair), then
single -> TP2 -> PP2 (TP 2 -> 1) -> DP2 ZeRO-3 (PP 2 -> 1) -> single (ZeRO-3 -> single process).
The TP2 and PP2 hops also recompute activations (selective, full): recomputation must not change
the losses either.
"""

from __future__ import annotations

import shutil

import pytest

from tests.pretrain.conftest import step_losses, train_layout

pytestmark = pytest.mark.slow

RELATIVE_TOLERANCE = 1e-4

# (name, processes, overrides, last step); the chain starts from the reference's step-2 checkpoint.
HOPS = [
    ("tp2-pp2", 4, ["parallel.tp=2", "parallel.pp=2"], 4),
    ("single", 1, [], 6),
    ("tp2", 2, ["parallel.tp=2", "parallel.recompute=selective"], 8),
    ("pp2", 2, ["parallel.pp=2", "parallel.recompute=full"], 10),
    ("dp2-zero3", 2, ["parallel.zero_stage=3"], 12),
    ("single", 1, [], 14),
]


def test_checkpoints_resume_across_layouts_as_if_uninterrupted(single_process_run, small_vocab_prefix, tmp_path):
    checkpoint = tmp_path / "ckpt"
    shutil.copytree(single_process_run / "ckpt" / "step_00000002", checkpoint / "step_00000002")
    (checkpoint / "latest").write_text("step_00000002")
    expected = step_losses(single_process_run)
    first = 3
    for index, (name, nproc, overrides, last) in enumerate(HOPS):
        run_dir = tmp_path / f"hop{index}-{name}"
        stderr = train_layout(small_vocab_prefix, checkpoint, run_dir, nproc, last, *overrides)
        assert "resharded to" in stderr and f"at step {first - 1}" in stderr, f"hop {name}: {stderr[-2000:]}"
        losses = step_losses(run_dir)
        assert sorted(losses) == list(range(first, last + 1)), name
        for step in losses:
            assert losses[step] == pytest.approx(expected[step], rel=RELATIVE_TOLERANCE), f"hop {name} step {step}"
        first = last + 1


def test_a_weights_only_layout_free_copy_keeps_exact_resume_and_restarts_moments_across_layouts(
        single_process_run, initial_checkpoint, small_vocab_prefix, tmp_path):
    """checkpoint.layout_free=weights leaves the Adam moments out of full/: a resume under the same
    layout is still exact (DeepSpeed's files hold them), one under another layout says they restart."""
    import json

    import torch

    checkpoint = tmp_path / "ckpt"
    shutil.copytree(initial_checkpoint, checkpoint)
    train_layout(small_vocab_prefix, checkpoint, tmp_path / "first", 1, 2, "checkpoint.layout_free=weights")
    full = checkpoint / "step_00000002" / "full"
    stage = torch.load(full / "stage_000.pt", weights_only=False)
    assert stage["model"] and not stage["exp_avg"] and not stage["exp_avg_sq"]
    assert json.loads((full / "layout.json").read_text())["moments"] is False
    shutil.copytree(checkpoint, tmp_path / "other-layout")

    train_layout(small_vocab_prefix, checkpoint, tmp_path / "same", 1, 4)
    expected, losses = step_losses(single_process_run), step_losses(tmp_path / "same")
    assert sorted(losses) == [3, 4]
    assert all(losses[step] == pytest.approx(expected[step], rel=RELATIVE_TOLERANCE) for step in losses)

    stderr = train_layout(small_vocab_prefix, tmp_path / "other-layout", tmp_path / "zero1", 1, 4,
                          "parallel.zero_stage=1")
    assert "resharded to" in stderr and "holds no Adam moments" in stderr and "restart from zero" in stderr
    assert sorted(step_losses(tmp_path / "zero1")) == [3, 4]
