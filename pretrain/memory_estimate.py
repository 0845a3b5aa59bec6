"""Per-GPU memory of a run layout, estimated before any process starts (``qwen-train --check``).

Four parts, in bytes, for the most loaded rank (pipeline stage 0 or the last, whichever holds more):
- parameters, gradients, optimizer state: the ZeRO paper's counts (``zero_bytes``) over the rank's
  parameters (its 1/tp share of its pipeline stage), with DeepSpeed's fp32 master copy. Under bf16
  the gradients are fp32 (4 bytes), since gradients accumulate and reduce in fp32 as Megatron does.
- activations kept for the backward of the micro-batches in flight, with the chosen recompute.
  Per layer and token, in elements: the two norm inputs, their outputs (the QKV and fc1 inputs),
  q, k, v, the attention output (flash/SDPA keep no score matrix), fc1's output (2 x ffn) and the
  fc2 input (ffn): ``8h + 3f``. Tensor parallelism splits all of it with sequence parallelism, and
  all but the 4h around the norms without. ``full`` recompute keeps only each layer's input (h)
  plus one layer's full set; ``selective`` recomputes the attention core, which flash attention
  does not store anyway (so it equals ``none`` here). The first stage of a 1F1B pipeline holds pp
  micro-batches at once. The output layer adds its logits (bf16) and the loss's fp32 softmax over
  the rank's vocabulary share.
Not counted: the CUDA context, NCCL and allocator fragmentation (a few GiB): ``fits`` leaves 10%.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pretrain.config import RunConfig
from pretrain.model.builder import count_parameters
from pretrain.model.vocab import padded_vocab_size

GIB = 2**30
# Of the GPU's memory, what the estimate may use: the rest is for what it does not count.
USABLE_FRACTION = 0.9


@dataclass(frozen=True)
class Bytes:
    parameters: float
    gradients: float
    optimizer: float


def zero_bytes(parameters: float, stage: int, dp: int, precision: str = "fp32") -> Bytes:
    """Per-rank bytes of ``parameters`` under ZeRO ``stage`` over ``dp`` ranks (the ZeRO paper's
    counts, with DeepSpeed's fp32 master copy)."""
    weight = 4 if precision == "fp32" else 2
    gradient = 4  # fp32 in fp32 training, and accumulated in fp32 under bf16
    # In fp32, ZeRO-0 steps the module's parameters and ZeRO-3 its fp32 partition in place: the
    # moments only. Otherwise an fp32 master copy (4 bytes) plus two moments (8): the paper's K = 12.
    optimizer = 8 if precision == "fp32" and stage in (0, 3) else 12
    return Bytes(parameters=weight * parameters / (dp if stage >= 3 else 1),
                 gradients=gradient * parameters / (dp if stage >= 2 else 1),
                 optimizer=optimizer * parameters / (dp if stage >= 1 else 1))


@dataclass(frozen=True)
class MemoryEstimate:
    parameters: float
    gradients: float
    optimizer: float
    activations: float

    @property
    def total(self) -> float:
        return self.parameters + self.gradients + self.optimizer + self.activations

    def fits(self, gpu_bytes: float) -> bool:
        return self.total <= USABLE_FRACTION * gpu_bytes

    def describe(self) -> str:
        parts = ", ".join(f"{name} {getattr(self, name) / GIB:.1f}"
                          for name in ("parameters", "gradients", "optimizer", "activations"))
        return f"{self.total / GIB:.1f} GiB per GPU ({parts})"


def _stage_parameters(config: RunConfig) -> float:
    """Parameters on the most loaded rank: its 1/tp share of the larger end stage of the pipeline."""
    model, parallel = config.model, config.parallel
    parts = count_parameters(model)
    layers = parts["layers"] / parallel.pp
    if parallel.pp == 1:
        return parts["total"] / parallel.tp
    return (layers + max(parts["input_embedding"], parts["output_layer"] + parts["final_norm"])) / parallel.tp


def _activation_bytes(config: RunConfig) -> float:
    model, parallel, training = config.model, config.parallel, config.training
    element = 4 if training.precision == "fp32" else 2
    tokens = model.seq_length * training.micro_batch_size
    tp, h, f = parallel.tp, model.hidden_size, model.ffn_hidden_size
    split = h + 3 * h + h + 3 * f  # attention and MLP insides: split by TP
    around_norms = 4 * h  # norm inputs and outputs: split by TP only with sequence parallelism
    per_layer = (split + around_norms) / tp if parallel.sequence_parallel else split / tp + around_norms
    layer_input = h / tp if parallel.sequence_parallel else h
    layers = model.num_layers / parallel.pp
    if parallel.recompute == "full":
        kept = layers * layer_input + per_layer
    else:
        kept = layers * per_layer
    in_flight = parallel.pp  # 1F1B: the first stage holds pp micro-batches before its first backward
    vocab = padded_vocab_size(model, tp) / tp
    logits = vocab * (2 + 4)  # bf16 logits and the loss's fp32 softmax
    return tokens * (element * kept * in_flight + logits)


def estimate(config: RunConfig, world_size: int) -> MemoryEstimate:
    parallel = config.parallel
    dp = max(1, world_size // (parallel.tp * parallel.pp))
    state = zero_bytes(_stage_parameters(config), parallel.zero_stage, dp, config.training.precision)
    return MemoryEstimate(state.parameters, state.gradients, state.optimizer, _activation_bytes(config))


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(GiB|GB|G)?\s*$", re.IGNORECASE)


def parse_gpu_memory(text: str) -> float:
    """'80GiB', '80GB' (read as GiB, as GPU datasheets mean it), or a number of GiB."""
    found = _SIZE.match(text)
    if not found or float(found.group(1)) <= 0:
        raise ValueError(f"--gpu-memory {text!r}: expected a size such as 80GiB")
    return float(found.group(1)) * GIB
