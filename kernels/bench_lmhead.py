"""``qwen-bench kernels --ops lmhead``: the fused output layer + cross-entropy against the
materializing implementations, in time and peak memory.

At Qwen-7B shapes by default (2048 tokens, hidden 4096, 151,936 rows): the fused op
(:func:`kernels.lmhead.fused_linear_cross_entropy`) against eager PyTorch (``F.linear`` then
``F.cross_entropy`` on fp32 logits), its ``torch.compile``, megatron-core's
``vocab_parallel_cross_entropy`` on the same logits (one tensor-parallel rank), and Liger-Kernel's
``LigerFusedLinearCrossEntropyFunction`` where it is installed (it needs a GPU). Every
implementation computes the same mean loss over all rows and its gradients with respect to hidden
states and weight.

Peak memory is that of one forward+backward above what was allocated before it, gradients
included, for every implementation through the same allocator: on CUDA torch's
``max_memory_allocated``; on CPU the process's peak resident set (``VmHWM``, reset through
``/proc/self/clear_refs``), since torch's CPU allocator hands large blocks straight to and back
from the kernel (mmap), so resident memory follows the live tensors.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Callable

import torch

from kernels import reference
from kernels.lmhead import fused_linear_cross_entropy

Loss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]  # (hidden, weight, labels) -> mean


def implementations(device: torch.device, compile_eager: bool) -> dict[str, Loss]:
    from megatron.core.tensor_parallel import vocab_parallel_cross_entropy

    def eager(h, w, y):
        return reference.linear_cross_entropy(h, w, y).mean()

    found: dict[str, Loss] = {
        "fused": lambda h, w, y: fused_linear_cross_entropy(h, w, y).mean(),
        "eager": eager,
        "megatron-core vocab_parallel_cross_entropy": lambda h, w, y: vocab_parallel_cross_entropy(
            torch.nn.functional.linear(h, w).float(), y).mean(),
    }
    if compile_eager:
        found["torch.compile"] = torch.compile(eager, dynamic=False)
    if device.type == "cuda":
        try:
            from liger_kernel.ops.fused_linear_cross_entropy import LigerFusedLinearCrossEntropyFunction

            found["Liger FusedLinearCrossEntropy"] = lambda h, w, y: LigerFusedLinearCrossEntropyFunction.apply(h, w, y)
        except ImportError:
            pass  # not installed
    return found


class PeakMemory:
    """Bytes above the starting point at the peak of a call, on ``device``."""

    STATUS = Path("/proc/self/status")

    def __init__(self, device: torch.device):
        self.device = device

    def _resident(self, field: str) -> int:
        return int(re.search(rf"^{field}:\s+(\d+) kB", self.STATUS.read_text(), re.M).group(1)) * 1024

    def measure(self, call: Callable[[], object]) -> int:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            start = torch.cuda.memory_allocated(self.device)
            result = call()
            torch.cuda.synchronize(self.device)
            del result
            return torch.cuda.max_memory_allocated(self.device) - start
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current resident set
        start = self._resident("VmRSS")
        result = call()
        del result
        return self._resident("VmHWM") - start


def lmhead_comparison(args: argparse.Namespace, device: torch.device, dtype: torch.dtype, timer) -> None:
    """Time (median, interleaved) and peak memory of forward and forward+backward."""
    from pretrain.config import ParallelConfig
    from pretrain.parallel.distributed import initialize_distributed

    initialize_distributed(ParallelConfig(), seed=1234)  # megatron-core's cross-entropy asks for its TP group
    generator = torch.Generator().manual_seed(0)
    hidden = torch.randn(args.tokens, args.hidden, generator=generator).to(device=device, dtype=dtype)
    weight = (torch.randn(args.vocab, args.hidden, generator=generator) * 0.02).to(device=device, dtype=dtype)
    labels = torch.randint(0, args.vocab, (args.tokens,), generator=generator).to(device)
    leaves = (hidden.clone().requires_grad_(), weight.clone().requires_grad_())

    def forward(loss: Loss):
        def run():
            with torch.no_grad():
                return loss(hidden, weight, labels)
        return run

    def forward_backward(loss: Loss):
        return lambda: torch.autograd.grad(loss(*leaves, labels), leaves)

    impls = implementations(device, not args.no_compile)
    memory = PeakMemory(device)
    print(f"\n## output layer + cross-entropy: {args.tokens} tokens x hidden {args.hidden} x {args.vocab:,} rows, "
          f"{args.dtype} (logits in fp32 would take {args.tokens * args.vocab * 4 / 2**20:,.0f} MiB)\n")
    print("| implementation | forward (ms) | forward+backward (ms) | fwd+bwd speedup vs eager | "
          "peak memory fwd+bwd (MiB) | of eager's |")
    print("|---|---|---|---|---|---|")
    times = {label: timer({name: ((lambda: None), make(loss)) for name, loss in impls.items()})
             for label, make in (("forward", forward), ("forward+backward", forward_backward))}
    peaks = {name: memory.measure(forward_backward(loss)) for name, loss in impls.items()}
    for name in impls:
        both = times["forward+backward"][name]
        print(f"| {name} | {times['forward'][name] * 1e3:.1f} | {both * 1e3:.1f} | "
              f"{times['forward+backward']['eager'] / both:.2f}x | {peaks[name] / 2**20:,.0f} | "
              f"{peaks[name] / peaks['eager']:.0%} |", flush=True)
