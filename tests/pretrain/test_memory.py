"""``qwen-bench memory``: the bytes real DeepSpeed engines hold per rank match the ZeRO formulas."""

from __future__ import annotations

import pytest

from pretrain.bench.memory import CATEGORIES, STAGES, measure
from pretrain.config import load_config
from pretrain.memory_estimate import estimate, zero_bytes

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def measured_dp2():
    return measure(dp=2)


@pytest.mark.parametrize("stage", STAGES)
def test_every_rank_holds_what_the_zero_formula_says(stage, measured_dp2):
    parameters, measured = measured_dp2
    expected = zero_bytes(parameters, stage, dp=2)
    for rank, got in enumerate(measured[stage]):
        for category in CATEGORIES:
            # DeepSpeed pads flat partitions to an alignment boundary: a few hundred bytes at most.
            assert getattr(got, category) == pytest.approx(getattr(expected, category), rel=0.01), \
                f"ZeRO-{stage} rank {rank} {category}"


def test_partitioning_shrinks_each_category_at_its_stage(measured_dp2):
    _, measured = measured_dp2
    rank0 = {stage: measured[stage][0] for stage in STAGES}
    assert rank0[1].optimizer < rank0[0].optimizer  # ZeRO-1: optimizer state
    assert rank0[2].gradients < rank0[1].gradients  # ZeRO-2: + gradients
    assert rank0[3].parameters < rank0[2].parameters  # ZeRO-3: + parameters


def test_formula_for_7b_bf16_matches_the_zero_paper_with_fp32_gradients():
    psi = 7_721_324_544
    zero0, zero3 = zero_bytes(psi, 0, dp=64, precision="bf16"), zero_bytes(psi, 3, dp=64, precision="bf16")
    # The paper's 2 + 2 + 12 bytes per parameter, with the gradients accumulated in fp32 (4).
    assert (zero0.parameters, zero0.gradients, zero0.optimizer) == (2 * psi, 4 * psi, 12 * psi)
    assert zero3.parameters + zero3.gradients + zero3.optimizer == pytest.approx(18 * psi / 64)


@pytest.mark.parametrize("stage", STAGES)
def test_check_estimate_is_within_10_percent_of_the_measured_bytes(stage, measured_dp2):
    """qwen-train --check's estimate (its whole-model path, not the bare formula) for the model
    that was measured."""
    _, measured = measured_dp2
    config = load_config(None, ["model.preset=qwen-tiny", "model.vocab_size=512", "model.make_vocab_size_divisible_by=1",
                                f"parallel.zero_stage={stage}", "training.micro_batch_size=1",
                                "training.global_batch_size=4"])
    predicted = estimate(config, world_size=2)
    for category in CATEGORIES:
        got = max(getattr(rank, category) for rank in measured[stage])
        assert getattr(predicted, category) == pytest.approx(got, rel=0.10), f"ZeRO-{stage} {category}"
