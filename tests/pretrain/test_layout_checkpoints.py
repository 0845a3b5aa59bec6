"""A checkpoint saved under one layout resumes under another, and training continues exactly as
the uninterrupted single-process run (model, Adam moments, schedule and data position carry over),
through the sharded checkpoint alone: each hop reads the boxes of its own shards from the chunks
the previous layout wrote.

One chain of hops through a single checkpoint directory, each hop a different layout resuming
the previous hop's last checkpoint: single -> TP2xPP2 -> single (the acceptance pair), then
single -> TP2 -> PP2 (TP 2 -> 1) -> DP2 ZeRO-3 (PP 2 -> 1) -> single (ZeRO-3 -> single process).
The TP2 and PP2 hops also recompute activations (selective, full): recomputation must not change
the losses either.
"""

from __future__ import annotations

import shutil

import pytest

from pretrain.checkpoint.sharded_state import OPTIMIZER_PREFIX
from tests.pretrain.conftest import saved_tensor, step_losses, train_layout

pytestmark = pytest.mark.slow

RELATIVE_TOLERANCE = 1e-4
MOMENT_TOLERANCE = 1e-4  # relative, in norm (moments restarted from zero would be off by ~1)

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
        # The Adam moments this layout wrote are the uninterrupted run's at the same step.
        for kind in ("exp_avg", "exp_avg_sq"):
            for parameter in ("embedding.word_embeddings.weight", "decoder.layers.mlp.linear_fc1.weight"):
                key = f"{OPTIMIZER_PREFIX}{kind}.{parameter}"
                ours = saved_tensor(checkpoint / f"step_{last:08d}", key)
                reference = saved_tensor(single_process_run / "ckpt" / f"step_{last:08d}", key)
                assert (ours - reference).norm() <= MOMENT_TOLERANCE * reference.norm(), f"hop {name} {key}"
        first = last + 1
