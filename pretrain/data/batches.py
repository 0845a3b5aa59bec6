"""This rank's micro-batches, cut from one global sample order and prefetched by DataLoader workers.

Step ``s`` of a run consumes samples ``[s * global_batch, (s + 1) * global_batch)``, split into
rounds of ``micro_batch x dp`` samples, and data-parallel rank ``r`` takes its ``micro_batch`` of
each round. The data position is therefore a single integer that checkpoints restore, and every
layout trains on the same samples.

Training reads through a ``torch.utils.data.DataLoader`` whose workers build the next micro-batches
from megatron-core's dataset while the current step runs, into pinned memory on CUDA (so the copy to
the GPU is asynchronous). The workers ignore SIGTERM/SIGINT: SLURM and Ctrl-C signal the whole
process group, and only the main process acts on them (checkpoint, then stop). So the training loop
ends them itself, by dropping its iterator (multiprocessing's own SIGTERM at exit would not).
"""

from __future__ import annotations

import signal
from collections.abc import Iterator

import torch

BATCH_KEYS = ("tokens", "labels", "loss_mask", "position_ids")
PREFETCH_PER_WORKER = 4  # micro-batches each worker keeps ready


class MicroBatchSampler(torch.utils.data.Sampler):
    """Sample indices of this rank's micro-batches for the global batches from ``first_sample`` up
    to ``end_sample``, in training order."""

    def __init__(self, first_sample: int, end_sample: int, global_batch: int, micro_batch: int, dp_rank: int,
                 dp_size: int):
        self.first_sample, self.end_sample, self.global_batch = first_sample, end_sample, global_batch
        self.micro_batch, self.dp_rank, self.per_round = micro_batch, dp_rank, micro_batch * dp_size

    def __iter__(self) -> Iterator[list[int]]:
        for batch_start in range(self.first_sample, self.end_sample, self.global_batch):
            for round_start in range(batch_start, batch_start + self.global_batch, self.per_round):
                begin = round_start + self.dp_rank * self.micro_batch
                yield list(range(begin, begin + self.micro_batch))

    def __len__(self) -> int:
        return len(range(self.first_sample, self.end_sample, self.global_batch)) * (self.global_batch // self.per_round)


def collate(samples: list[dict]) -> dict[str, torch.Tensor]:
    return {key: torch.stack([torch.as_tensor(sample[key]) for sample in samples]) for key in BATCH_KEYS}


def micro_batches(dataset, sampler: MicroBatchSampler) -> Iterator[dict[str, torch.Tensor]]:
    """The sampler's micro-batches read in this process (evaluation: a few, rarely)."""
    for indices in sampler:
        yield collate([dataset[index] for index in indices])


def _leave_stop_signals_to_the_main_process(worker_id: int) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def prefetching_loader(dataset, sampler: MicroBatchSampler, workers: int) -> torch.utils.data.DataLoader:
    """The sampler's micro-batches, built by ``workers`` background processes (0: in this process,
    on demand)."""
    return torch.utils.data.DataLoader(
        dataset, batch_sampler=sampler, collate_fn=collate, num_workers=workers,
        pin_memory=torch.cuda.is_available(), prefetch_factor=PREFETCH_PER_WORKER if workers else None,
        worker_init_fn=_leave_stop_signals_to_the_main_process if workers else None)
