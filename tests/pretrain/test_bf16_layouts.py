"""bf16, the precision real runs use: checkpoints, resume and layout parity as real processes.

The reference is a single-process bf16 run (ZeRO-0, which DeepSpeed runs through its BF16_Optimizer)
started from the shared step-0 checkpoint (fp32 weights, loaded through the layout-free copy:
the precision is part of a layout). Every other layout resumes the reference's step-2 checkpoint
(single process -> that layout, weights and Adam moments through the layout-free copy), trains on
and must follow the reference's losses; then a second run resumes that layout's own step-4
checkpoint and must repeat its steps exactly.

Tolerances: a resume under the same layout is exact (1e-6; the same arithmetic in the same order).
Across layouts the fp32 gradient sums are added in another order (over data-parallel ranks, per
pipeline stage), which can move a weight by one bf16 rounding (2^-8 relative) after a step; the
losses agree to RELATIVE_TOLERANCE.
"""

from __future__ import annotations

import shutil
import signal
from pathlib import Path

import pytest

from tests.pretrain.conftest import parity_overrides, run_processes, start_training, step_losses, train_layout
from tests.pretrain.test_training import latest_tag, wait_for

pytestmark = pytest.mark.slow

BF16 = "training.precision=bf16"
STEPS = 6
RELATIVE_TOLERANCE = 2e-3
EXACT = 1e-6

LAYOUTS = {
    "dp2-zero1": (2, ["parallel.zero_stage=1"]),
    "dp2-zero2": (2, ["parallel.zero_stage=2"]),
    "dp2-zero3": (2, ["parallel.zero_stage=3"]),
    "pp2": (2, ["parallel.pp=2"]),
}


def copy_checkpoint(source: Path, tag: str, destination: Path) -> Path:
    shutil.copytree(source / tag, destination / tag)
    (destination / "latest").write_text(tag)
    return destination


@pytest.fixture(scope="module")
def bf16_reference(initial_checkpoint, small_vocab_prefix, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("bf16-single")
    shutil.copytree(initial_checkpoint, run_dir / "ckpt")
    stderr = train_layout(small_vocab_prefix, run_dir / "ckpt", run_dir, 1, STEPS, BF16, "checkpoint.save_interval=2")
    assert "resharded to" in stderr and "'precision': 'bf16'" in stderr
    return run_dir


def test_bf16_reference_learns(bf16_reference):
    losses = step_losses(bf16_reference)
    assert sorted(losses) == list(range(1, STEPS + 1))
    assert losses[STEPS] < losses[1] - 1.0


def test_bf16_sigkill_then_resume_reproduces_the_uninterrupted_losses(bf16_reference, small_vocab_prefix, tmp_path):
    checkpoints = copy_checkpoint(bf16_reference / "ckpt", "step_00000002", tmp_path / "ckpt")
    overrides = parity_overrides(small_vocab_prefix, tmp_path, STEPS, f"checkpoint.dir={checkpoints}", BF16,
                                 "checkpoint.save_interval=2")
    # Stands still before step 6, step 4's checkpoint complete: polling alone lost the race to a
    # fast machine, which saved step 6 and exited between two polls.
    process = start_training(overrides, entry=("-m", "tests.support.train_then_hang", "5"))
    wait_for(lambda: latest_tag(checkpoints) == "step_00000004", process)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL
    assert not any(checkpoints.glob("*step_00000006"))
    resumed = run_processes(1, overrides)
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    assert "at step 4" in resumed.stderr and "resharded to" not in resumed.stderr
    expected, losses = step_losses(bf16_reference), step_losses(tmp_path)
    for step in (5, 6):
        assert losses[step] == pytest.approx(expected[step], abs=EXACT, rel=0), f"step {step}"


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_bf16_layout_resumes_the_single_process_run_and_its_own_checkpoints(layout, bf16_reference,
                                                                             small_vocab_prefix, tmp_path):
    nproc, extra = LAYOUTS[layout]
    crossed = copy_checkpoint(bf16_reference / "ckpt", "step_00000002", tmp_path / "ckpt")
    stderr = train_layout(small_vocab_prefix, crossed, tmp_path / "cross", nproc, STEPS, BF16,
                          "checkpoint.save_interval=2", *extra)
    assert "resharded to" in stderr and "at step 2" in stderr
    expected, losses = step_losses(bf16_reference), step_losses(tmp_path / "cross")
    assert sorted(losses) == list(range(3, STEPS + 1))
    print(f"{layout}: largest relative difference from the single-process bf16 losses "
          f"{max(abs(losses[step] / expected[step] - 1) for step in losses):.1e}")
    for step in losses:
        assert losses[step] == pytest.approx(expected[step], rel=RELATIVE_TOLERANCE), f"{layout} step {step}"

    same = copy_checkpoint(crossed, "step_00000004", tmp_path / "same-ckpt")
    stderr = train_layout(small_vocab_prefix, same, tmp_path / "same", nproc, STEPS, BF16, *extra)
    assert "resharded to" not in stderr and "at step 4" in stderr
    resumed = step_losses(tmp_path / "same")
    assert sorted(resumed) == [5, 6]
    for step in resumed:
        assert resumed[step] == pytest.approx(losses[step], abs=EXACT, rel=0), f"{layout} step {step}"
