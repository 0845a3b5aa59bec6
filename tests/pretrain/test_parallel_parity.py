"""Every parallel layout trains the same run: per-step losses match the single-process run.

fp32, dropout 0, the same data order (the global sample order is layout-free) and the same initial
weights: one step-0 checkpoint of a single-process run, which every other layout loads through the
layout-free copy (:mod:`pretrain.checkpoint_reshard`). megatron-core's own initialization would
not do for PP: a later stage draws its layers from a generator that has not drawn the embedding.
"""

from __future__ import annotations

import shutil

import pytest

from tests.pretrain.conftest import PARITY_STEPS, step_losses, train_layout

pytestmark = pytest.mark.slow

RELATIVE_TOLERANCE = 1e-4

LAYOUTS = {
    "dp2-zero1": (2, ["parallel.zero_stage=1"]),
    "dp2-zero2": (2, ["parallel.zero_stage=2"]),
    "dp2-zero3": (2, ["parallel.zero_stage=3"]),
    "tp2": (2, ["parallel.tp=2"]),
    "tp2-sequence-parallel": (2, ["parallel.tp=2", "parallel.sequence_parallel=true"]),
    "pp2": (2, ["parallel.pp=2"]),
    "tp2-dp2-zero2": (4, ["parallel.tp=2", "parallel.zero_stage=2"]),
    "pp2-dp2-zero1": (4, ["parallel.pp=2", "parallel.zero_stage=1"]),
    "tp2-pp2": (4, ["parallel.tp=2", "parallel.pp=2"]),
}


def test_reference_run_learns(single_process_run):
    losses = step_losses(single_process_run)
    assert sorted(losses) == list(range(1, PARITY_STEPS + 1))
    assert losses[PARITY_STEPS] < losses[1] - 1.0


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_layout_matches_single_process_losses(layout, initial_checkpoint, small_vocab_prefix, single_process_run,
                                              tmp_path):
    nproc, extra = LAYOUTS[layout]
    shutil.copytree(initial_checkpoint, tmp_path / "ckpt")
    stderr = train_layout(small_vocab_prefix, tmp_path / "ckpt", tmp_path, nproc, PARITY_STEPS, *extra)
    assert "resharded to" in stderr  # the initial weights came through the layout-free copy
    expected, losses = step_losses(single_process_run), step_losses(tmp_path)
    assert sorted(losses) == sorted(expected)
    for step in expected:
        assert losses[step] == pytest.approx(expected[step], rel=RELATIVE_TOLERANCE), f"{layout} step {step}"
    # Evaluation (forward only; through the pipeline schedule when pp > 1) agrees too.
    expected_valid, valid = step_losses(single_process_run, "valid_loss"), step_losses(tmp_path, "valid_loss")
    assert valid.keys() == expected_valid.keys() == {PARITY_STEPS}
    assert valid[PARITY_STEPS] == pytest.approx(expected_valid[PARITY_STEPS], rel=RELATIVE_TOLERANCE)
