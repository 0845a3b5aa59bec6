"""Wrap the megatron-core model in a DeepSpeed engine (ZeRO data parallelism, bf16, clipping)."""

from __future__ import annotations

import torch

from pretrain.config import RunConfig
from pretrain.parallel.distributed import MegatronMpu
from pretrain.training.optimizer import build_optimizer, build_scheduler


def deepspeed_reports_grad_norm(config: RunConfig) -> bool:
    """DeepSpeed's plain fp32 path (ZeRO-0) clips without keeping the norm; there we clip ourselves."""
    return config.parallel.zero_stage > 0 or config.training.precision != "fp32"


def clip_and_measure(engine, max_norm: float) -> float:
    """DeepSpeed's own clipping (TP-replicated parameters counted once), returning the norm."""
    from deepspeed.runtime.utils import clip_grad_norm_

    return float(clip_grad_norm_(parameters=engine.module.parameters(), max_norm=max_norm, mpu=engine.mpu))


def deepspeed_config(config: RunConfig, data_parallel_size: int) -> dict:
    training, parallel = config.training, config.parallel
    accumulation = training.global_batch_size // (training.micro_batch_size * data_parallel_size)
    zero: dict = {"stage": parallel.zero_stage}
    if parallel.offload_optimizer:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": torch.cuda.is_available()}
    return {
        "train_batch_size": training.global_batch_size,
        "train_micro_batch_size_per_gpu": training.micro_batch_size,
        "gradient_accumulation_steps": accumulation,
        "gradient_clipping": config.optimizer.clip_grad if deepspeed_reports_grad_norm(config) else 0.0,
        "zero_optimization": zero,
        "bf16": {"enabled": training.precision == "bf16"},
        # Our AdamW is torch's (or DeepSpeed's CPU Adam); ZeRO partitions its state either way.
        "zero_allow_untested_optimizer": True,
        "steps_per_print": 2**31 - 1,
        "wall_clock_breakdown": False,
    }


def build_engine(model: torch.nn.Module, config: RunConfig, data_parallel_size: int):
    import deepspeed

    optimizer = build_optimizer(model, config.optimizer, config.parallel.offload_optimizer)
    scheduler = build_scheduler(optimizer, config.optimizer, config.training.train_steps)
    engine, _, _, _ = deepspeed.initialize(
        model=model, optimizer=optimizer, lr_scheduler=scheduler, mpu=MegatronMpu(),
        config=deepspeed_config(config, data_parallel_size))
    return engine
