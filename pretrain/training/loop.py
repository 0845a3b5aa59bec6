"""The training loop: data -> steps of the parallel model -> metrics, evaluation and checkpoints.

The layout (TP x PP x DP x ZeRO, and how a checkpoint of any layout comes back) is
:mod:`pretrain.training.layout`'s; this loop reads the same for every one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from foundation.tokenizer import EOD_ID
from pretrain.checkpoint.store import CheckpointStore
from pretrain.config import RunConfig
from pretrain.data.batches import MicroBatchSampler, micro_batches, prefetching_loader
from pretrain.data.datasets import build_datasets
from pretrain.data.embedded import build_embedded_corpus
from pretrain.parallel.distributed import initialize_distributed, io_phase, local_device
from pretrain.training.layout import parallelize
from pretrain.training.metrics import (MetricsLogger, device_peak_tflops, flops_per_token, memory_gib,
                                      model_flops_utilization)
from pretrain.training.signals import StopRequest
from pretrain.training.step_metrics import IntervalReading, StepMetrics, ThroughputWindow, check_gradient_norm


@dataclass
class TrainResult:
    losses: dict[int, float] = field(default_factory=dict)  # step (1-based) -> global-batch loss
    eval_losses: dict[int, float] = field(default_factory=dict)
    final_step: int = 0
    stopped_by: str | None = None
    checkpoint: str | None = None


class Trainer:
    def __init__(self, config: RunConfig):
        from megatron.core import parallel_state

        self.config = config
        self.launch = initialize_distributed(config.parallel, config.training.seed)
        self.device = local_device()
        self.dp_rank = parallel_state.get_data_parallel_rank()
        self.dp_size = parallel_state.get_data_parallel_world_size()
        self.dp_group = parallel_state.get_data_parallel_group()
        self.log = MetricsLogger(config.logging.dir, self.launch.rank == 0, config.logging.tensorboard)
        self.log.info("resolved config:\n" + config.to_yaml())
        self.log.info(f"world size {self.launch.world_size} = tp {config.parallel.tp} x pp {config.parallel.pp} "
                      f"x dp {self.dp_size} (ZeRO stage {config.parallel.zero_stage})")
        # Before the model: the store's writer forks its helper process while this one is small.
        self.store = CheckpointStore(config.checkpoint, self.launch.rank, self.log.info) if config.checkpoint.dir else None
        with io_phase(config.parallel):
            self.data = self._build_data()
            self.model, self.state = parallelize(config, self.store, self.log.info)
        self.accumulation = config.training.global_batch_size // (config.training.micro_batch_size * self.dp_size)
        self.train_batches = None  # the prefetching iterator, from the data position on (run())
        self.peak_tflops, self.peak_source = device_peak_tflops(config.logging.peak_tflops, config.training.precision)
        self.flops_per_token = flops_per_token(config.model)

    def _build_data(self):
        prefixes, weights = self.config.data.prefixes, self.config.data.weights
        if not prefixes:
            cache_dir = self.config.data.cache_dir or ".cache/qwen-pretrain"
            # One tokenizing rank per node; the others then find the finished files.
            if self.launch.local_rank == 0:
                build_embedded_corpus(cache_dir)
            torch.distributed.barrier()
            prefixes, weights = build_embedded_corpus(cache_dir)
            self.log.info(f"data: embedded corpus {prefixes} weights {weights}")
        return build_datasets(self.config, prefixes, weights, EOD_ID)

    def _to_device(self, batch: dict) -> dict:
        return {key: value.to(self.device, non_blocking=True) for key, value in batch.items()}

    def _dp_mean(self, value: torch.Tensor) -> float:
        value = value.detach().float().clone()
        if self.dp_size > 1:
            torch.distributed.all_reduce(value, group=self.dp_group)
            value /= self.dp_size
        return value.item()

    def _sampler(self, first_sample: int, end_sample: int) -> MicroBatchSampler:
        training = self.config.training
        return MicroBatchSampler(first_sample, end_sample, training.global_batch_size, training.micro_batch_size,
                                 self.dp_rank, self.dp_size)

    def _batches(self, dataset, first_sample: int) -> list[dict]:
        sampler = self._sampler(first_sample, first_sample + self.config.training.global_batch_size)
        return [self._to_device(batch) for batch in micro_batches(dataset, sampler)]

    def _prefetching_train_batches(self):
        training = self.config.training
        sampler = self._sampler(self.state.consumed_samples, training.train_steps * training.global_batch_size)
        return iter(prefetching_loader(self.data.train, sampler, self.config.data.num_workers))

    def train_step(self) -> torch.Tensor:
        """One optimizer step on the next global batch; its loss on this rank stays on the device."""
        batches = [self._to_device(next(self.train_batches)) for _ in range(self.accumulation)]
        loss = self.model.train_step(batches)
        self.state.step += 1
        self.state.consumed_samples += self.config.training.global_batch_size
        return loss

    def evaluate(self) -> float | None:
        if self.data.valid is None or len(self.data.valid) == 0:
            return None
        training = self.config.training
        total, count = torch.zeros((), device=self.device), 0
        for round_index in range(training.eval_iters):
            first = (round_index * training.global_batch_size) % max(1, len(self.data.valid) - training.global_batch_size + 1)
            batches = self._batches(self.data.valid, first)
            total += self.model.evaluate(batches) * len(batches)
            count += len(batches)
        return self._dp_mean(total / count)

    def _start_save(self) -> None:
        """A checkpoint of this step, written in the background with checkpoint.async_save."""
        with io_phase(self.config.parallel):
            self.model.save(self.store, self.state)

    def save(self) -> str | None:
        """A checkpoint of this step, complete on return; its path."""
        if self.store is None:
            return None
        with io_phase(self.config.parallel):
            self.model.save(self.store, self.state)
            self.store.wait()
        return str(self.store.latest())

    def _log_step(self, reading: IntervalReading, window: ThroughputWindow) -> None:
        """Rank 0 logs the interval: its mean loss (each step's is in the TrainResult), the last
        gradient norm, and the throughput of its training time."""
        training = self.config.training
        loss = sum(reading.losses.values()) / len(reading.losses)
        tokens_per_second = window.steps * training.global_batch_size * self.config.model.seq_length / window.seconds()
        world = self.launch.world_size
        mfu, mfu_palm = (model_flops_utilization(tokens_per_second, flops, self.peak_tflops, world)
                         for flops in (self.flops_per_token.causal, self.flops_per_token.palm))
        metrics = {"loss": loss, "lr": self.model.learning_rate(), "grad_norm": reading.grad_norm,
                   "tokens_per_second": tokens_per_second, "mfu": mfu, "mfu_palm": mfu_palm,
                   "memory_gib": memory_gib()}
        self.log.log(self.state.step, metrics,
                     f"step {self.state.step:>6}/{training.train_steps} | loss {loss:.4f} | lr {metrics['lr']:.3e} | "
                     f"grad norm {metrics['grad_norm']:.3f} | {tokens_per_second:,.0f} tok/s | "
                     f"MFU {100 * mfu:.2f}% (PaLM count {100 * mfu_palm:.2f}%) | mem {metrics['memory_gib']:.2f} GiB")

    def _log_eval(self, result: TrainResult) -> None:
        loss = self.evaluate()
        if loss is None:
            return
        result.eval_losses[self.state.step] = loss
        self.log.log(self.state.step, {"valid_loss": loss, "valid_ppl": math.exp(min(loss, 50.0))},
                     f"step {self.state.step:>6} | validation loss {loss:.4f} | perplexity {math.exp(min(loss, 50.0)):.2f}")

    def run(self) -> TrainResult:
        """Train to ``training.train_steps``. The host reads the device only at log intervals (the
        losses, gradient norm and stop flag together), at evaluation and at checkpoints."""
        stop = StopRequest()
        self.log.info(f"MFU peak: {self.peak_tflops:.2f} TFLOP/s per device ({self.peak_source}); "
                      f"{self.flops_per_token.causal:.3e} FLOPs per token (6N + causal attention; "
                      f"PaLM's count {self.flops_per_token.palm:.3e})")
        result = TrainResult()
        first_step = self.state.step
        self.train_batches = self._prefetching_train_batches()
        try:
            self._train_steps(result, stop)
        finally:
            # Ends the loader's workers here, also after an error: at interpreter exit
            # multiprocessing would stop them with SIGTERM, which they ignore (pretrain.data.batches).
            self.train_batches = None
        if self.state.step > first_step and not result.stopped_by \
                and self.config.training.train_steps % self.config.training.eval_interval:
            self._log_eval(result)
        # A run resumed at its last step has nothing new to evaluate or save. A save still being
        # written (also when a stop signal ended the loop) is finished first.
        if self.state.step > first_step:
            result.checkpoint = self.save() or result.checkpoint
        result.final_step = self.state.step
        self.log.close()
        return result

    def _train_steps(self, result: TrainResult, stop: StopRequest) -> None:
        """Steps until the last one or an agreed stop request; logs, evaluates and saves on the way."""
        training, checkpoint = self.config.training, self.config.checkpoint
        metrics, window = StepMetrics(self.dp_group, self.dp_size), ThroughputWindow()
        while self.state.step < training.train_steps:
            loss = self.train_step()
            metrics.record(self.state.step, loss, self.model.grad_norm)
            window.count_step()
            stopping = False
            if self.state.step % training.log_interval == 0 or self.state.step == training.train_steps:
                reading = metrics.read(stop.reduced_flag(self.device))
                check_gradient_norm(reading.grad_norm, self.state.step)
                result.losses.update(reading.losses)
                self._log_step(reading, window)
                window.restart()
                stopping = stop.agreed(reading.stop)
                if self.store is not None:
                    self.store.poll()  # a background save whose files are all written becomes latest
            if self.state.step % training.eval_interval == 0:
                with window.excluding():
                    self._log_eval(result)
            if stopping:
                result.stopped_by = stop.signal_name
                self.log.info(f"received {stop.signal_name}: checkpointing at step {self.state.step} and stopping")
                return
            if checkpoint.save_interval and self.state.step % checkpoint.save_interval == 0 \
                    and self.state.step < training.train_steps:
                with window.excluding():
                    metrics.check_last_gradient_norm(self.state.step)
                    self._start_save()


def run_training(config: RunConfig) -> TrainResult:
    return Trainer(config).run()
