"""The training loop: data -> DeepSpeed engine steps -> metrics, evaluation and checkpoints."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from pretrain.checkpoint import CheckpointStore, TrainState, resolve_checkpoint
from pretrain.checkpoint_reshard import load_full_model
from pretrain.config import CHECKPOINT_CONFIG_FILE, RunConfig, saved_run_config
from pretrain.data.batches import MicroBatchSampler, micro_batches, prefetching_loader
from pretrain.data.datasets import build_datasets
from pretrain.data.embedded import build_embedded_corpus
from pretrain.model.builder import build_model
from pretrain.parallel.distributed import initialize_distributed, io_phase, local_device
from pretrain.parallel.sequence_parallel import sum_sequence_parallel_gradients
from pretrain.training.engine import build_engine, clip_and_measure, deepspeed_reports_grad_norm
from pretrain.training.metrics import (MetricsLogger, device_peak_tflops, flops_per_token, memory_gib,
                                      model_flops_utilization)
from pretrain.training.pipeline import PipelineSchedule, masked_mean
from pretrain.training.signals import StopRequest
from pretrain.training.step_metrics import IntervalReading, StepMetrics, ThroughputWindow
from tools.tokenizer import EOD_ID


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

        with io_phase(config.parallel):
            self.data = self._build_data()
        model = build_model(config.model, config.parallel, config.training.precision)
        if config.parallel.sequence_parallel:
            sum_sequence_parallel_gradients(model)
        checkpoint = config.checkpoint
        self.store = (CheckpointStore(checkpoint.dir, self.launch.rank, config.parallel.zero_stage,
                                      config.training.precision, checkpoint.keep_last, checkpoint.layout_free == "full")
                      if checkpoint.dir else None)
        self.resume_tag, self.resharded = self._find_resume_tag(model)
        self._load_init_weights(model)
        self.engine = build_engine(model, config, self.dp_size)
        self.pipeline = (PipelineSchedule(self.engine, config.model.seq_length, config.training.micro_batch_size)
                         if config.parallel.pp > 1 else None)
        self.state = TrainState()
        self.accumulation = config.training.global_batch_size // (config.training.micro_batch_size * self.dp_size)
        self.train_batches = None  # the prefetching iterator, from the data position on (run())
        self.grad_norm: torch.Tensor | float = 0.0
        self.peak_tflops, self.peak_source = device_peak_tflops(config.logging.peak_tflops)
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

    def _forward_loss(self, batch: dict) -> torch.Tensor:
        per_token = self.engine(batch["tokens"], batch["position_ids"], None, labels=batch["labels"])
        return masked_mean(per_token, batch["loss_mask"])

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

    def _optimizer_step(self) -> None:
        if self.engine.is_gradient_accumulation_boundary() and not deepspeed_reports_grad_norm(self.config):
            self.grad_norm = clip_and_measure(self.engine, self.config.optimizer.clip_grad)
        self.engine.step()

    def train_step(self) -> torch.Tensor:
        """One optimizer step on the next global batch; its loss on this rank stays on the device."""
        training = self.config.training
        batches = [self._to_device(next(self.train_batches)) for _ in range(self.accumulation)]
        if self.pipeline:
            loss = self.pipeline.forward_backward(batches)
            self._optimizer_step()
        else:
            loss = torch.zeros((), device=self.device)
            for batch in batches:
                micro_loss = self._forward_loss(batch)
                self.engine.backward(micro_loss)
                self._optimizer_step()
                loss += micro_loss.detach().float() / len(batches)
        if deepspeed_reports_grad_norm(self.config):
            norm = self.engine.get_global_grad_norm()  # a device tensor: not read here
            self.grad_norm = 0.0 if norm is None else norm
        self.state.step += 1
        self.state.consumed_samples += training.global_batch_size
        return loss

    @torch.no_grad()
    def evaluate(self) -> float | None:
        if self.data.valid is None or len(self.data.valid) == 0:
            return None
        training = self.config.training
        self.engine.eval()
        total, count = torch.zeros((), device=self.device), 0
        for round_index in range(training.eval_iters):
            first = (round_index * training.global_batch_size) % max(1, len(self.data.valid) - training.global_batch_size + 1)
            batches = self._batches(self.data.valid, first)
            if self.pipeline:
                total += self.pipeline.evaluate(batches) * len(batches)
            else:
                total += sum(self._forward_loss(batch).float() for batch in batches)
            count += len(batches)
        self.engine.train()
        return self._dp_mean(total / count)

    def _find_resume_tag(self, model: torch.nn.Module) -> tuple[str | None, bool]:
        """The checkpoint to resume from and whether it needs resharding; a resharded checkpoint's
        weights go into the model here, before DeepSpeed partitions it."""
        if not (self.store and self.config.checkpoint.resume):
            return None, False
        tag, notes = self.store.find_resume_tag()
        resharded = tag is not None and self.store.saved_under_another_layout(tag)
        if resharded:
            notes.append(self.store.load_model_from_another_layout(model, tag))
        for note in notes:
            self.log.info(f"checkpoint: {note}")
        return tag, resharded

    def _load_init_weights(self, model: torch.nn.Module) -> None:
        """``checkpoint.init_weights`` into the model before DeepSpeed partitions it, unless the run
        resumes (then the resumed weights win); optimizer, step and data position start fresh."""
        source = self.config.checkpoint.init_weights
        if source is None:
            return
        if self.resume_tag is not None:
            self.log.info(f"checkpoint: resuming from {self.store.directory / self.resume_tag}; "
                          f"checkpoint.init_weights {source} is not used")
            return
        path = resolve_checkpoint(source)
        load_full_model(model, path)
        self.log.info(f"checkpoint: initialized the weights from {path} (optimizer, step and data position "
                      "start fresh)")
        # Not errors: raising the RoPE base or the context is how long-context training starts.
        saved = saved_run_config(path).model
        for name in ("rotary_base", "norm_epsilon", "seq_length"):
            if getattr(saved, name) != getattr(self.config.model, name):
                self.log.info(f"checkpoint: note: model.{name} is {getattr(self.config.model, name)} in this run, "
                              f"{getattr(saved, name)} where the weights were trained ({path / CHECKPOINT_CONFIG_FILE})")

    def resume(self) -> None:
        if self.resume_tag is None:
            return
        with io_phase(self.config.parallel):
            self.state, notes = self.store.load(self.engine, self.resume_tag, self.resharded)
        for note in notes:
            self.log.info(f"checkpoint: {note}")
        self.log.info(f"checkpoint: resumed from {self.store.directory / self.resume_tag} at step {self.state.step}")

    def save(self) -> str | None:
        if self.store is None:
            return None
        with io_phase(self.config.parallel):
            path = self.store.save(self.engine, self.state, self.config.to_yaml())
        self.log.info(f"checkpoint: saved {path}")
        return str(path)

    def _log_step(self, reading: IntervalReading, window: ThroughputWindow) -> None:
        """Rank 0 logs the interval: its mean loss (each step's is in the TrainResult), the last
        gradient norm, and the throughput of its training time."""
        training = self.config.training
        loss = sum(reading.losses.values()) / len(reading.losses)
        tokens_per_second = window.steps * training.global_batch_size * self.config.model.seq_length / window.seconds()
        world = self.launch.world_size
        mfu, mfu_palm = (model_flops_utilization(tokens_per_second, flops, self.peak_tflops, world)
                         for flops in (self.flops_per_token.causal, self.flops_per_token.palm))
        metrics = {"loss": loss, "lr": self.engine.get_lr()[0], "grad_norm": reading.grad_norm,
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
        self.resume()
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
        # A run resumed at its last step has nothing new to evaluate or save.
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
            metrics.record(self.state.step, loss, self.grad_norm)
            window.count_step()
            stopping = False
            if self.state.step % training.log_interval == 0 or self.state.step == training.train_steps:
                reading = metrics.read(stop.reduced_flag(self.device))
                result.losses.update(reading.losses)
                self._log_step(reading, window)
                window.restart()
                stopping = stop.agreed(reading.stop)
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
                    result.checkpoint = self.save()


def run_training(config: RunConfig) -> TrainResult:
    return Trainer(config).run()
