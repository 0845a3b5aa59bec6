"""Wrap the megatron-core model in a DeepSpeed engine (ZeRO data parallelism, bf16, clipping)."""

from __future__ import annotations

import torch

from pretrain.config import RunConfig
from pretrain.parallel.distributed import MegatronMpu
from pretrain.training.bf16_device_checks import keep_bf16_checks_on_device
from pretrain.training.optimizer import build_optimizer, build_scheduler


def deepspeed_reports_grad_norm(config: RunConfig) -> bool:
    """DeepSpeed's plain fp32 path (ZeRO-0) clips without keeping the norm; there we clip ourselves."""
    return config.parallel.zero_stage > 0 or config.training.precision != "fp32"


def clip_and_measure(engine, max_norm: float) -> torch.Tensor:
    """Clip to the global gradient norm and return it: squares summed over this rank's shard (a
    TP-replicated parameter on TP rank 0 only), then over the TP x PP group. DeepSpeed's
    ``clip_grad_norm_`` would count replicated parameters on model-parallel rank 0 only, which with
    PP > 1 drops the later stages' norms. The norm stays on the device (read at log intervals)."""
    from megatron.core import parallel_state
    from megatron.core.tensor_parallel import param_is_not_tensor_parallel_duplicate

    parameters = [p for p in engine.module.parameters() if p.grad is not None]
    squares = torch.zeros((), dtype=torch.float32, device=parameters[0].grad.device)
    for parameter in parameters:
        if param_is_not_tensor_parallel_duplicate(parameter):
            squares += parameter.grad.detach().float().pow(2).sum()
    torch.distributed.all_reduce(squares, group=parallel_state.get_model_parallel_group())
    norm = squares.sqrt()
    torch.nn.utils.clip_grads_with_norm_(parameters, max_norm, norm)
    return norm


def deepspeed_zero_stage(config: RunConfig) -> int:
    """The ZeRO stage DeepSpeed is given. Under bf16, stage 0 becomes 1: DeepSpeed accumulates
    gradients in fp32 without ZeRO only through its BF16_Optimizer, which it builds for stage 1
    (0.19.8 raises NotImplementedError for bf16 + fp32 accumulation at stage 0). That optimizer
    keeps fp32 master weights and Adam moments partitioned over data parallel, as ZeRO-1 does; with
    one data-parallel rank nothing is partitioned."""
    stage = config.parallel.zero_stage
    return max(stage, 1) if config.training.precision == "bf16" else stage


def _zero_section(config: RunConfig) -> dict:
    parallel = config.parallel
    zero: dict = {"stage": deepspeed_zero_stage(config),
                  # Overlapping reduces each gradient as backward produces it; under PP the schedule
                  # runs backward and the engine reduces afterwards (DeepSpeed's own pipeline engine
                  # turns overlap off too; left on, ZeRO-1 finds gradients "already reduced").
                  "overlap_comm": parallel.zero_overlap_comm and parallel.pp == 1,
                  "contiguous_gradients": parallel.zero_contiguous_gradients,
                  "reduce_bucket_size": parallel.zero_reduce_bucket_size,
                  "allgather_bucket_size": parallel.zero_allgather_bucket_size}
    if parallel.zero_stage == 3:
        zero["stage3_prefetch_bucket_size"] = parallel.zero_prefetch_bucket_size
    if parallel.offload_optimizer:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": torch.cuda.is_available()}
    return zero


def _precision_sections(config: RunConfig) -> dict:
    """bf16 weights and activations, with Megatron's numerics: every micro-batch's gradient is
    added into an fp32 buffer as soon as backward produces it (``immediate_grad_update``: also when
    the pipeline schedule, not DeepSpeed, runs backward), and data-parallel reduction is in fp32."""
    if config.training.precision != "bf16":
        return {"bf16": {"enabled": False}}
    return {"bf16": {"enabled": True, "immediate_grad_update": True},
            "data_types": {"grad_accum_dtype": "fp32"},
            "communication_data_type": "fp32"}


def deepspeed_config(config: RunConfig, data_parallel_size: int) -> dict:
    training = config.training
    accumulation = training.global_batch_size // (training.micro_batch_size * data_parallel_size)
    return {
        "train_batch_size": training.global_batch_size,
        "train_micro_batch_size_per_gpu": training.micro_batch_size,
        "gradient_accumulation_steps": accumulation,
        "gradient_clipping": config.optimizer.clip_grad if deepspeed_reports_grad_norm(config) else 0.0,
        "zero_optimization": _zero_section(config),
        **_precision_sections(config),
        # Our AdamW is torch's (or DeepSpeed's CPU Adam); ZeRO partitions its state either way.
        "zero_allow_untested_optimizer": True,
        "steps_per_print": 2**31 - 1,
        "wall_clock_breakdown": False,
    }


def build_engine(model: torch.nn.Module, config: RunConfig, data_parallel_size: int):
    import deepspeed

    if config.training.precision == "bf16":
        keep_bf16_checks_on_device()
    optimizer = build_optimizer(model, config.optimizer, config.parallel.offload_optimizer)
    scheduler = build_scheduler(optimizer, config.optimizer, config.training.train_steps)
    engine, _, _, _ = deepspeed.initialize(
        model=model, optimizer=optimizer, lr_scheduler=scheduler, mpu=MegatronMpu(),
        config=deepspeed_config(config, data_parallel_size))
    return engine
