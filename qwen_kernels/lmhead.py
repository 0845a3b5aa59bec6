"""The output layer and its cross-entropy as one op that never holds the [tokens x vocab] logits.

``fused_linear_cross_entropy(hidden, weight, labels)`` equals
``F.cross_entropy((hidden @ weight.T)[..., :vocab_size].float(), labels, reduction="none")``:
the per-token loss in fp32 (fp64 for fp64 inputs), zero where ``labels == ignore_index``. The
kernels (qwen_kernels/csrc/cpu/lmhead.cpp, qwen_kernels/csrc/cuda/lmhead.cu) walk the vocabulary in chunks
of rows; the forward keeps an online log-sum-exp per token, the backward recomputes each chunk's
logits for the softmax gradient. Rows of ``weight`` from ``vocab_size`` on are padding: they take
no part in the softmax and get a zero gradient, so the objective does not depend on how many
padding rows a tensor-parallel layout adds.

Tensor parallelism: with ``shard`` the weight is this rank's rows of a vocabulary split across the
tensor-parallel group, as megatron-core's ``ColumnParallelLinear`` output layer holds it. The
per-rank maxima, label logits and sums of exponentials are combined with the three all-reduces of
megatron-core's ``vocab_parallel_cross_entropy`` (MAX, SUM, SUM). The hidden states' gradient this
op returns is the rank's partial sum; the caller reduces it across the group the way the output
layer does (``copy_to_tensor_model_parallel_region`` or the sequence-parallel gather).

bf16/fp16 GEMMs: the CUDA kernels run them in the input dtype with fp32 accumulation. On CPU the
kernel does so where the CPU has instructions for that dtype (:func:`cpu_multiplies_natively`:
AMX or AVX512-BF16), rounding each chunk's logits and softmax gradient to it as eager PyTorch
does; elsewhere torch's bf16 GEMM is a slow fallback, and the kernel widens the inputs to fp32.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import torch.distributed as dist

from qwen_kernels.build import load

IGNORE_INDEX = -100  # F.cross_entropy's default


@functools.cache
def cpu_multiplies_natively(dtype: torch.dtype) -> bool:
    """Whether this CPU has matrix instructions for ``dtype`` (bf16: AMX or AVX512-BF16; fp16:
    AMX-FP16), so that oneDNN's GEMMs in it beat fp32 ones. torch's probes are private; a torch
    without them counts as no."""
    probes = {torch.bfloat16: ("_is_amx_tile_supported", "_is_avx512_bf16_supported"),
              torch.float16: ("_is_amx_fp16_supported",)}.get(dtype, ())
    return any(getattr(torch.cpu, probe, lambda: False)() for probe in probes)


@dataclass(frozen=True)
class VocabShard:
    """This rank's rows of the output layer: global ids ``start .. start + rows``, of which the
    first ``valid_rows`` are real tokens of a ``vocab_size`` vocabulary."""

    start: int
    valid_rows: int
    vocab_size: int
    group: dist.ProcessGroup | None = None  # the ranks holding the other shards

    @classmethod
    def of_rank(cls, rows: int, vocab_size: int, rank: int, group: dist.ProcessGroup | None) -> "VocabShard":
        start = rank * rows
        return cls(start, max(0, min(rows, vocab_size - start)), vocab_size, group)


def _combine_shards(shard_max: torch.Tensor, shard_sum: torch.Tensor, label_logit: torch.Tensor,
                    group: dist.ProcessGroup | None) -> torch.Tensor:
    """The global log-sum-exp per token; ``label_logit`` becomes the global label logit in place."""
    if group is None or dist.get_world_size(group) == 1:
        return shard_max + torch.log(shard_sum)
    global_max = shard_max.clone()
    dist.all_reduce(global_max, op=dist.ReduceOp.MAX, group=group)
    dist.all_reduce(label_logit, op=dist.ReduceOp.SUM, group=group)  # only the owning rank's is non-zero
    shard_sum.mul_(torch.exp(shard_max - global_max))
    dist.all_reduce(shard_sum, op=dist.ReduceOp.SUM, group=group)
    return global_max + torch.log(shard_sum)


class LinearCrossEntropyFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor, shard: VocabShard,
                ignore_index: int, input_dtype_gemm: bool) -> torch.Tensor:
        shard_max, shard_sum, label_logit = load().lmhead_forward(
            hidden, weight, labels, shard.start, shard.valid_rows, shard.vocab_size, ignore_index, input_dtype_gemm)
        lse = _combine_shards(shard_max, shard_sum, label_logit, shard.group)
        ignored = labels == ignore_index
        ctx.save_for_backward(hidden, weight, labels, lse, ignored)
        ctx.shard, ctx.input_dtype_gemm = shard, input_dtype_gemm
        return (lse - label_logit).masked_fill_(ignored, 0.0)

    @staticmethod
    def backward(ctx, grad_loss: torch.Tensor):
        hidden, weight, labels, lse, ignored = ctx.saved_tensors
        shard = ctx.shard
        grad = grad_loss.to(lse.dtype).masked_fill(ignored, 0.0).contiguous()
        dhidden, dweight = load().lmhead_backward(grad, hidden, weight, labels, lse, shard.start, shard.valid_rows,
                                                  shard.vocab_size, ctx.input_dtype_gemm)
        return dhidden, dweight, None, None, None, None


def fused_linear_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor,
                               vocab_size: int | None = None, shard: VocabShard | None = None,
                               ignore_index: int = IGNORE_INDEX, input_dtype_gemm: bool | None = None) -> torch.Tensor:
    """Per-token cross-entropy of ``hidden [..., H] @ weight [rows, H].T`` against ``labels [...]``.

    ``vocab_size`` (default: all rows) is the real vocabulary, for an unsharded weight; a sharded
    one passes ``shard`` instead. Inputs must be contiguous, hidden and weight of one floating
    dtype, labels int64 in ``[0, vocab_size)`` or ``ignore_index``; anything else raises.
    ``input_dtype_gemm`` (CPU, bf16/fp16) picks the GEMMs' dtype; by default the input dtype where
    the CPU multiplies it natively, else fp32.
    """
    if shard is None:
        shard = VocabShard(0, weight.shape[0] if vocab_size is None else vocab_size,
                           weight.shape[0] if vocab_size is None else vocab_size)
    if labels.shape != hidden.shape[:-1]:
        raise ValueError(f"labels must have shape {tuple(hidden.shape[:-1])} (hidden without its last "
                         f"dimension), got {tuple(labels.shape)}")
    # Flattening is a view only for contiguous inputs; others reach the extension as they are and
    # its check names the problem.
    flat_hidden = hidden.view(-1, hidden.shape[-1]) if hidden.is_contiguous() and hidden.dim() > 0 else hidden
    flat_labels = labels.view(-1) if labels.is_contiguous() else labels
    if input_dtype_gemm is None:
        input_dtype_gemm = cpu_multiplies_natively(hidden.dtype)
    loss = LinearCrossEntropyFunction.apply(flat_hidden, weight, flat_labels, shard, ignore_index, input_dtype_gemm)
    return loss.view(labels.shape)
