"""The prefetching data path hands each rank exactly the samples of the global sample order."""

from __future__ import annotations

import shutil

import pytest
import torch

from pretrain.config import load_config
from pretrain.data.batches import BATCH_KEYS, MicroBatchSampler, micro_batches, prefetching_loader
from pretrain.data.datasets import build_datasets
from tests.pretrain.conftest import PARITY_STEPS, parity_overrides, step_losses, train_layout

GLOBAL, MICRO, DP = 4, 1, 2


@pytest.fixture(scope="module")
def train_dataset(small_vocab_prefix, single_process_groups, tmp_path_factory):
    config = load_config(None, parity_overrides(small_vocab_prefix, tmp_path_factory.mktemp("batches"), PARITY_STEPS))
    return build_datasets(config, config.data.prefixes, None, 0).train


@pytest.mark.parametrize("first_step", [0, 7])  # a fresh run, and one resumed at step 7
@pytest.mark.parametrize("dp_rank", range(DP))
def test_prefetched_micro_batches_are_the_rank_slices_of_each_global_batch(train_dataset, first_step, dp_rank):
    sampler = MicroBatchSampler(first_step * GLOBAL, PARITY_STEPS * GLOBAL, GLOBAL, MICRO, dp_rank, DP)
    prefetched = list(prefetching_loader(train_dataset, sampler, workers=2))
    assert len(prefetched) == len(sampler) == (PARITY_STEPS - first_step) * GLOBAL // (MICRO * DP)
    # Step s, round r (micro-batch r of this rank in the step): samples s*G + r*micro*dp + rank*micro ...
    expected = [[step * GLOBAL + round_ * MICRO * DP + dp_rank * MICRO + i for i in range(MICRO)]
                for step in range(first_step, PARITY_STEPS) for round_ in range(GLOBAL // (MICRO * DP))]
    for batch, indices in zip(prefetched, expected):
        for key in BATCH_KEYS:
            samples = torch.stack([torch.as_tensor(train_dataset[index][key]) for index in indices])
            assert torch.equal(batch[key], samples), (key, indices)
    # In this process, without workers (evaluation's path), the batches are the same.
    in_process = list(micro_batches(train_dataset, sampler))
    assert all(torch.equal(a[key], b[key]) for a, b in zip(in_process, prefetched) for key in BATCH_KEYS)


@pytest.mark.slow
def test_training_without_workers_gives_the_prefetched_runs_losses(initial_checkpoint, small_vocab_prefix,
                                                                   single_process_run, tmp_path):
    """The reference run prefetches (data.num_workers 2, the default); building every batch in the
    training process when it is needed, as before prefetching, trains the very same run."""
    shutil.copytree(initial_checkpoint, tmp_path / "ckpt")
    train_layout(small_vocab_prefix, tmp_path / "ckpt", tmp_path, 1, PARITY_STEPS, "data.num_workers=0")
    expected, losses = step_losses(single_process_run), step_losses(tmp_path)
    assert sorted(losses) == list(range(1, PARITY_STEPS + 1))
    assert all(losses[step] == pytest.approx(expected[step], abs=1e-6, rel=0) for step in losses)
