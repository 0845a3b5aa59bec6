"""Training with ``model.kernels: fused`` (fused layers and the fused output layer + loss) gives
the losses of ``model.kernels: torch`` (fp32), in one process and with the vocabulary split over
two tensor-parallel ranks (gloo)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.pretrain.conftest import parity_overrides, run_processes, small_vocab_prefix, step_losses  # noqa: F401

STEPS = 20


@pytest.mark.slow
@pytest.mark.usefixtures("ops")
@pytest.mark.parametrize("tp", [1, 2], ids=["tp1", "tp2"])
def test_training_loss_with_fused_kernels_equals_the_torch_path(small_vocab_prefix, tmp_path, tp):
    runs = {mode: tmp_path / mode for mode in ("fused", "torch")}
    # One micro-batch per step keeps 20 steps short; both runs at once use both cores. lr 3e-3
    # (ten times Qwen's peak) still learns in 20 steps; at the parity runs' 1e-2 this tiny model's
    # loss spikes amplify 1-ulp differences of summation order chaotically (2e-5 apart by step 20).
    extra = ("training.global_batch_size=1", "optimizer.lr=3e-3", f"parallel.tp={tp}")
    with ThreadPoolExecutor(max_workers=2) as pool:
        done = dict(zip(runs, pool.map(
            lambda mode: run_processes(tp, parity_overrides(small_vocab_prefix, runs[mode], STEPS,
                                                           f"model.kernels={mode}", *extra)),
            runs)))
    for mode, result in done.items():
        assert result.returncode == 0, result.stderr
    assert "kernels: fused C++/CUDA kernels on cpu (model.kernels=fused)" in done["fused"].stderr
    assert "kernels: torch (model.kernels=torch)" in done["torch"].stderr

    fused, plain = step_losses(runs["fused"]), step_losses(runs["torch"])
    assert sorted(fused) == sorted(plain) == list(range(1, STEPS + 1))
    assert fused[STEPS] < fused[1] - 1.0  # it trained
    for step in plain:
        assert fused[step] == pytest.approx(plain[step], abs=1e-5, rel=0), f"step {step}"
