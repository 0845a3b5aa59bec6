"""bf16 training accumulates gradients as Megatron does: each micro-batch's bf16 gradient is added
into an fp32 buffer, so the accumulated gradient equals an fp32 sum of the micro-batch gradients.

The reference differentiates the same bf16 model one micro-batch at a time (``torch.autograd.grad``
leaves ``.grad`` alone) and sums the results in fp32. Through DeepSpeed's backward and through
megatron-core's schedule (which runs backward itself, as under pipeline parallelism), the gradient
DeepSpeed holds at the accumulation boundary must match it to fp32 round-off (1e-6 relative; the
sums are the same additions in the same order). Summing in bf16 instead misses it by far more
than that, which the test also shows.
"""

from __future__ import annotations

import pytest
import torch

from pretrain.config import load_config
from pretrain.model.builder import build_model
from pretrain.training.engine import build_engine
from pretrain.training.schedules import PipelineSchedule, masked_mean

MICRO_BATCHES = 4
SEQ = 32
VOCAB = 512
FP32_TOLERANCE = 1e-6
BF16_ACCUMULATION_ERROR = 1e-3  # a bf16 sum of 4 terms is off by ~2^-9 relative


def _config(zero_stage: int):
    return load_config(None, [
        "model.preset=qwen-tiny", f"model.vocab_size={VOCAB}", f"model.seq_length={SEQ}",
        "training.precision=bf16", "training.micro_batch_size=1", f"training.global_batch_size={MICRO_BATCHES}",
        f"parallel.zero_stage={zero_stage}", "optimizer.clip_grad=0"])


def _batches() -> list[dict]:
    generator = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(MICRO_BATCHES):
        tokens = torch.randint(1, VOCAB, (1, SEQ + 1), generator=generator)
        batches.append({"tokens": tokens[:, :-1], "labels": tokens[:, 1:], "loss_mask": torch.ones(1, SEQ),
                        "position_ids": torch.arange(SEQ).unsqueeze(0)})
    return batches


def _loss(module, batch) -> torch.Tensor:
    return masked_mean(module(batch["tokens"], batch["position_ids"], None, labels=batch["labels"]),
                       batch["loss_mask"])


# The schedule drives DeepSpeed only under pipeline parallelism, which takes ZeRO <= 1.
@pytest.mark.parametrize("backward, zero_stage", [("deepspeed", 0), ("deepspeed", 2), ("deepspeed", 3),
                                                  ("megatron-schedule", 0)])
def test_bf16_gradients_accumulate_in_fp32(backward, zero_stage, single_process_groups, monkeypatch):
    monkeypatch.setenv("LOCAL_RANK", "0")  # DeepSpeed asks for it; the process group already exists
    config = _config(zero_stage)
    torch.manual_seed(0)
    model = build_model(config.model, config.parallel, "bf16")
    batches = _batches()
    parameters = dict(model.named_parameters())
    per_micro_batch = [torch.autograd.grad(_loss(model, batch), list(parameters.values())) for batch in batches]
    # DeepSpeed and the schedule both average over the micro-batches (a power of two: exact in bf16).
    fp32_sum = {name: sum(grads[i].float() for grads in per_micro_batch) / MICRO_BATCHES
                for i, name in enumerate(parameters)}
    bf16_sum = {name: sum(grads[i] for grads in per_micro_batch).float() / MICRO_BATCHES
                for i, name in enumerate(parameters)}

    engine = build_engine(model, config, 1)
    if backward == "deepspeed":
        for batch in batches:
            engine.backward(_loss(engine, batch))
    else:
        PipelineSchedule(engine, SEQ, 1).forward_backward(batches, optimizer_step=lambda: None)

    from deepspeed.utils import safe_get_full_grad

    worst_bf16_error = 0.0
    for name, parameter in engine.module.named_parameters():
        accumulated = safe_get_full_grad(parameter)
        assert accumulated.dtype == torch.float32, name
        accumulated = accumulated.reshape(fp32_sum[name].shape)
        torch.testing.assert_close(accumulated, fp32_sum[name], rtol=FP32_TOLERANCE, atol=0, msg=name)
        scale = fp32_sum[name].abs().max()
        worst_bf16_error = max(worst_bf16_error, float((bf16_sum[name] - fp32_sum[name]).abs().max() / scale))
    assert worst_bf16_error > BF16_ACCUMULATION_ERROR
    engine.destroy()
