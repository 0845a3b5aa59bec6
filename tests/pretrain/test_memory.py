"""``qwen-bench memory``: the bytes real DeepSpeed engines hold per rank match the ZeRO formulas."""

from __future__ import annotations

import pytest

from pretrain.bench.memory import CATEGORIES, STAGES, formula, measure

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def measured_dp2():
    return measure(dp=2)


@pytest.mark.parametrize("stage", STAGES)
def test_every_rank_holds_what_the_zero_formula_says(stage, measured_dp2):
    parameters, measured = measured_dp2
    expected = formula(parameters, stage, dp=2)
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


def test_formula_for_7b_bf16_matches_the_zero_paper():
    psi = 7_721_324_544
    zero0, zero3 = formula(psi, 0, dp=64, precision="bf16"), formula(psi, 3, dp=64, precision="bf16")
    assert (zero0.parameters, zero0.gradients, zero0.optimizer) == (2 * psi, 2 * psi, 12 * psi)
    assert zero3.parameters + zero3.gradients + zero3.optimizer == pytest.approx(16 * psi / 64)
