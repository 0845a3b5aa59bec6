"""``qwen-bench kernels --ops lmhead``: the fused output layer + cross-entropy against the
materializing implementations, in time and peak memory.

At Qwen-7B shapes by default (2048 tokens, hidden 4096, 151,936 rows): the fused op
(:func:`qwen_kernels.lmhead.fused_linear_cross_entropy`) against eager PyTorch (``F.linear`` then
``F.cross_entropy`` on fp32 logits), its ``torch.compile``, megatron-core's
``vocab_parallel_cross_entropy`` on the same logits (one tensor-parallel rank), and Liger-Kernel's
``LigerFusedLinearCrossEntropyFunction`` where it is installed (it needs a GPU). Every
implementation computes the same mean loss over all rows and its gradients with respect to hidden
states and weight. With bf16/fp16 on CPU the fused op runs twice, with its GEMMs in that dtype
and widened to fp32 (its default is the first where the CPU multiplies the dtype natively).

Peak memory is that of one forward+backward above what was allocated before it, for every
implementation through the same allocator, reported with the gradients it returns (d hidden and
d weight, the same bytes for all) and without them: on CUDA torch's
``max_memory_allocated``; on CPU the process's peak resident set (``VmHWM``, reset through
``/proc/self/clear_refs``), since torch's CPU allocator hands large blocks straight to and back
from the kernel (mmap), so resident memory follows the live tensors.
"""

from __future__ import annotations

import argparse
import re
import statistics
import time
from pathlib import Path
from typing import Callable

import torch

from qwen_kernels import reference
from qwen_kernels.lmhead import cpu_multiplies_natively, fused_linear_cross_entropy

Loss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]  # (hidden, weight, labels) -> mean


def fused_variants(device: torch.device, dtype: torch.dtype) -> dict[str, Loss]:
    """The fused op; on CPU in bf16/fp16 once per GEMM dtype, its default on this CPU first."""
    name = {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype)
    if device.type != "cpu" or name is None:
        return {"fused": lambda h, w, y: fused_linear_cross_entropy(h, w, y).mean()}

    def fused(input_dtype_gemm: bool) -> Loss:
        return lambda h, w, y: fused_linear_cross_entropy(h, w, y, input_dtype_gemm=input_dtype_gemm).mean()

    routes = [(f"fused, GEMMs in {name}", True), ("fused, GEMMs in fp32", False)]
    if not cpu_multiplies_natively(dtype):
        routes.reverse()
    (default_label, default_route), (other_label, other_route) = routes
    return {f"{default_label} (default here)": fused(default_route), other_label: fused(other_route)}


def implementations(device: torch.device, dtype: torch.dtype, compile_eager: bool) -> dict[str, Loss]:
    from megatron.core.tensor_parallel import vocab_parallel_cross_entropy

    def eager(h, w, y):
        return reference.linear_cross_entropy(h, w, y).mean()

    found: dict[str, Loss] = {
        **fused_variants(device, dtype),
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

    def start(self) -> int:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            return torch.cuda.memory_allocated(self.device)
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current resident set
        return self._resident("VmRSS")

    def peak_since(self, start: int) -> int:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            return torch.cuda.max_memory_allocated(self.device) - start
        return self._resident("VmHWM") - start


def lmhead_comparison(args: argparse.Namespace, device: torch.device, dtype: torch.dtype) -> None:
    """Forward+backward of each implementation in turn, ``args.repeats`` times: median time and
    peak memory (with and without the gradients it returns, which every implementation must hold)."""
    from pretrain.config import ParallelConfig
    from pretrain.parallel.distributed import initialize_distributed

    initialize_distributed(ParallelConfig(), seed=1234)  # megatron-core's cross-entropy asks for its TP group
    generator = torch.Generator().manual_seed(0)
    hidden = torch.randn(args.tokens, args.hidden, generator=generator).to(device=device, dtype=dtype)
    weight = (torch.randn(args.vocab, args.hidden, generator=generator) * 0.02).to(device=device, dtype=dtype)
    labels = torch.randint(0, args.vocab, (args.tokens,), generator=generator).to(device)
    leaves = (hidden.requires_grad_(), weight.requires_grad_())
    impls = implementations(device, dtype, not args.no_compile)
    memory = PeakMemory(device)
    times: dict[str, list[float]] = {name: [] for name in impls}
    peaks: dict[str, int] = dict.fromkeys(impls, 0)
    gradient_bytes = sum(leaf.nbytes for leaf in leaves)
    # At Qwen-7B shapes one CPU call takes minutes: no warm-up call (the allocator's first-touch
    # costs fall on every implementation alike), except torch.compile's compiling first call.
    if "torch.compile" in impls:
        torch.autograd.grad(impls["torch.compile"](*leaves, labels), leaves)
    for _ in range(args.repeats):
        for name, loss in impls.items():
            start_bytes = memory.start()
            start = time.perf_counter()
            grads = torch.autograd.grad(loss(*leaves, labels), leaves)
            synchronize(device)
            times[name].append(time.perf_counter() - start)
            peaks[name] = max(peaks[name], memory.peak_since(start_bytes))
            del grads
    print(f"\n## output layer + cross-entropy, forward+backward: {args.tokens} tokens x hidden {args.hidden} x "
          f"{args.vocab:,} rows, {args.dtype} (fp32 logits would take {args.tokens * args.vocab * 4 / 2**20:,.0f} MiB; "
          f"the gradients returned take {gradient_bytes / 2**20:,.0f} MiB)\n")
    print("| implementation | time (ms) | speedup vs eager | peak memory (MiB) | of eager's | "
          "peak beyond the returned gradients (MiB) | of eager's |")
    print("|---|---|---|---|---|---|---|")
    eager_time, eager_peak = statistics.median(times["eager"]), peaks["eager"]
    for name in impls:
        seconds, working = statistics.median(times[name]), peaks[name] - gradient_bytes
        print(f"| {name} | {seconds * 1e3:,.0f} | {eager_time / seconds:.2f}x | {peaks[name] / 2**20:,.0f} | "
              f"{share(peaks[name], eager_peak)} | {working / 2**20:,.0f} | "
              f"{share(working, eager_peak - gradient_bytes)} |", flush=True)


def share(part: int, whole: int) -> str:
    """``part`` as a percentage of ``whole``; at toy sizes eager's peak can stay within memory the
    process already held, leaving nothing to compare with."""
    return f"{part / whole:.0%}" if whole > 0 else "n/a"


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
