"""``qwen-bench kernels``: fused RMSNorm, SwiGLU and RoPE against eager PyTorch, torch.compile
and the alternatives installed (PyTorch's ``F.rms_norm``; on GPU Liger, apex, Transformer Engine);
``--ops lmhead`` adds the fused output layer + cross-entropy (pretrain/bench/kernels_lmhead.py).

Each op runs forward, and forward+backward, at Qwen-7B shapes by default (2048 tokens, hidden 4096,
ffn 11008, 32 heads of 128). The implementations take turns on every repetition so that load from
other processes hits them alike; the median is reported. Bytes/s is measured against the minimum
bytes each op must move (REFERENCE.md section 5: per element, RMSNorm reads x and writes y forward,
reads x and dy and writes dx backward; SwiGLU per output element reads gate and up and writes out
forward, reads gate, up and dout and writes both halves of d(fc1) backward; RoPE reads and writes
once each way), next to the copy bandwidth of the same device measured in the same run.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import time
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from foundation.dispatch import positive_int
from qwen_kernels import reference
from qwen_kernels.functions import accumulate_dtype, fused_rmsnorm, fused_rotary, fused_swiglu

DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32, "fp16": torch.float16}
# What FusedSwiGLUMLP runs: d(fc1) written over fc1, saving an fc1-sized allocation.
GRAD_INTO_INPUT = "fused, d(fc1) into fc1 (as in the MLP)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tokens", type=positive_int, default=2048, help="sequence x batch rows (default 2048)")
    parser.add_argument("--hidden", type=positive_int, default=4096)
    parser.add_argument("--ffn", type=positive_int, default=11008, help="per SwiGLU branch; fc1 is twice this wide")
    parser.add_argument("--heads", type=positive_int, default=32)
    parser.add_argument("--head-dim", type=positive_int, default=128, help="even (rotate-half)")
    parser.add_argument("--dtype", choices=tuple(DTYPES), default="bf16")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=positive_int, default=7, help="timed runs of each implementation")
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="CPU threads for every implementation (default: torch's default)")
    parser.add_argument("--no-compile", action="store_true", help="leave torch.compile out (it compiles for minutes)")
    parser.add_argument("--vocab", type=positive_int, default=151_936, help="output-layer rows for lmhead")
    parser.add_argument("--ops", default="rmsnorm,swiglu,rotary",
                        help="comma-separated subset of rmsnorm, swiglu, rotary, lmhead (lmhead at Qwen-7B "
                             "shapes takes tens of minutes on a small CPU)")
    parser.add_argument("--model-preset", default="qwen-small",
                        help="preset for the training-step comparison of model.kernels fused vs torch ('none': skip)")
    parser.add_argument("--model-tokens", type=positive_int, default=512, help="tokens per training step (seq x batch 2)")
    parser.add_argument("--model-precision", choices=("fp32", "bf16"), default="fp32",
                        help="of the training-step comparison (fp32: CPU bf16 matmuls are emulated and slow)")


@dataclass
class OpCase:
    name: str
    inputs: tuple[torch.Tensor, ...]  # the differentiable ones first
    differentiable: int  # how many leading inputs get gradients
    grad_out: torch.Tensor
    implementations: dict[str, Callable[..., torch.Tensor]]
    forward_bytes: int
    backward_bytes: int
    # Implementations whose backward writes the gradient over their input (timed in
    # forward+backward only; the input is restored, untimed, before every call).
    overwrite_input: tuple[str, ...] = ()


OPS = ("rmsnorm", "swiglu", "rotary", "lmhead")


def wanted_ops(args: argparse.Namespace) -> list[str]:
    wanted = [name.strip() for name in args.ops.split(",")]
    unknown = set(wanted) - set(OPS)
    if unknown:
        raise SystemExit(f"qwen-bench kernels: unknown op(s) {', '.join(sorted(unknown))}; choose from {', '.join(OPS)}")
    return wanted


def op_cases(args: argparse.Namespace, device: torch.device, dtype: torch.dtype, wanted: list[str]) -> list[OpCase]:
    size = torch.tensor([], dtype=dtype).element_size()
    tokens, hidden, ffn = args.tokens, args.hidden, args.ffn

    def rand(*shape, dt=dtype):
        return torch.randn(*shape, device=device, dtype=dt)

    x = rand(tokens, hidden)
    weight = torch.rand(hidden, device=device, dtype=dtype) + 0.5
    fc1 = rand(tokens, 2 * ffn)
    q = rand(tokens, 1, args.heads, args.head_dim)
    freqs = reference.rotary_angles(tokens, args.head_dim).to(device=device, dtype=accumulate_dtype(dtype))
    cases = {
        "rmsnorm": OpCase("RMSNorm", (x, weight), 2, rand(tokens, hidden),
                          {"fused": lambda a, w: fused_rmsnorm(a, w, 1e-6),
                           "eager": lambda a, w: reference.rmsnorm(a, w, 1e-6)},
                          2 * x.numel() * size, 3 * x.numel() * size),
        "swiglu": OpCase("SwiGLU", (fc1,), 1, rand(tokens, ffn),
                         {"fused": fused_swiglu, "eager": reference.swiglu,
                          GRAD_INTO_INPUT: lambda f: fused_swiglu(f, grad_into_input=True)},
                         3 * tokens * ffn * size, 5 * tokens * ffn * size, overwrite_input=(GRAD_INTO_INPUT,)),
        "rotary": OpCase("RoPE", (q, freqs), 1, rand(*q.shape),
                         {"fused": fused_rotary, "eager": reference.rotary},
                         2 * q.numel() * size, 2 * q.numel() * size),
    }
    chosen = [cases[name] for name in wanted]
    for key, alternatives in installed_alternatives(device).items():
        for name, impl in alternatives.items():
            if key in wanted and runs_once(cases[key], impl, name):
                cases[key].implementations[name] = impl
    if not args.no_compile:
        for case in chosen:
            case.implementations["torch.compile"] = torch.compile(case.implementations["eager"], dynamic=False)
    return chosen


Timed = tuple[Callable[[], object], Callable[[], object]]  # (untimed set-up, timed call)


Alternatives = dict[str, dict[str, Callable[..., torch.Tensor]]]  # op -> implementation name -> call


def installed_alternatives(device: torch.device) -> Alternatives:
    """Other implementations a user may have: PyTorch's own ``F.rms_norm`` everywhere, and the
    GPU-only libraries (Liger, apex, Transformer Engine) where they are installed."""
    found: Alternatives = {"rmsnorm": {"torch F.rms_norm": lambda x, w: F.rms_norm(x, (x.shape[-1],), w, 1e-6)},
                           "swiglu": {}}
    if device.type != "cuda":
        return found
    for library in (_liger, _apex, _transformer_engine):
        try:
            for op, implementations in library(device).items():
                found[op].update(implementations)
        except ImportError:
            pass  # not installed
        except Exception as error:  # noqa: BLE001 - installed, but not the API we call: say so, go on
            print(f"qwen-bench kernels: leaving out {library.__name__.strip('_')}: {error}")
    return found


def _liger(device: torch.device) -> Alternatives:
    from liger_kernel.ops.rms_norm import LigerRMSNormFunction
    from liger_kernel.ops.swiglu import LigerSiLUMulFunction

    # Liger takes gate and up as two contiguous tensors: the copies out of fc1 are timed too.
    return {"rmsnorm": {"Liger": lambda x, w: LigerRMSNormFunction.apply(x, w, 1e-6)},
            "swiglu": {"Liger (gate, up copied out of fc1)": lambda fc1: LigerSiLUMulFunction.apply(
                *(half.contiguous() for half in torch.chunk(fc1, 2, dim=-1)))}}


def _apex(device: torch.device) -> Alternatives:
    from apex.normalization.fused_layer_norm import fused_rms_norm_affine

    return {"rmsnorm": {"apex": lambda x, w: fused_rms_norm_affine(x, w, (x.shape[-1],), 1e-6)}}


def _transformer_engine(device: torch.device) -> Alternatives:
    import transformer_engine.pytorch as te

    norms: dict[int, torch.nn.Module] = {}

    def rmsnorm(x, w):
        # TE's RMSNorm is a module; functional_call runs it with the benchmark's weight tensor.
        if x.shape[-1] not in norms:  # built once, outside the timed calls that follow
            norms[x.shape[-1]] = te.RMSNorm(x.shape[-1], eps=1e-6, device=device, params_dtype=w.dtype)
        return torch.func.functional_call(norms[x.shape[-1]], {"weight": w}, (x,))

    swiglu = te.ops.SwiGLU()  # gate is the first half of fc1, as in megatron-core
    return {"rmsnorm": {"Transformer Engine": rmsnorm}, "swiglu": {"Transformer Engine": swiglu}}


def runs_once(case: OpCase, impl: Callable[..., torch.Tensor], name: str) -> bool:
    """An installed library whose API differs from what we call (forward or backward) is reported
    and left out."""
    try:
        setup, run_once = forward_backward(case, impl, overwrites_input=False)
        setup()
        run_once()
        return True
    except Exception as error:  # noqa: BLE001 - any failure of a third-party call means "leave it out"
        print(f"qwen-bench kernels: leaving out {name} for {case.name}: {error}")
        return False


def forward_only(case: OpCase, impl: Callable, overwrites_input: bool) -> Timed:
    def run():
        with torch.no_grad():
            return impl(*case.inputs)
    return (lambda: None), run


def forward_backward(case: OpCase, impl: Callable, overwrites_input: bool) -> Timed:
    originals = case.inputs[: case.differentiable]
    leaves = [t.detach().clone().requires_grad_() for t in originals]
    rest = case.inputs[case.differentiable:]

    def restore():
        if overwrites_input:
            with torch.no_grad():
                for leaf, original in zip(leaves, originals):
                    leaf.copy_(original)

    def run():
        out = impl(*leaves, *rest)
        return torch.autograd.grad(out, leaves, case.grad_out)
    return restore, run


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved_medians(runs: dict[str, Timed], repeats: int, device: torch.device) -> dict[str, float]:
    """Median seconds per call; every repetition calls each implementation once, in turn."""
    for setup, run in runs.values():  # warm-up: JIT/compile, allocator, caches
        for _ in range(2):
            setup()
            run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, (setup, run) in runs.items():
            setup()
            synchronize(device)
            start = time.perf_counter()
            run()
            synchronize(device)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(samples) for name, samples in times.items()}


def copy_bandwidth(device: torch.device, dtype: torch.dtype, elements: int, repeats: int) -> float:
    """Bytes/s of ``dst.copy_(src)`` on a buffer of the ops' size: the device's practical ceiling."""
    src = torch.randn(elements, device=device).to(dtype)
    dst = torch.empty_like(src)
    seconds = interleaved_medians({"copy": ((lambda: None), lambda: dst.copy_(src))}, repeats, device)["copy"]
    return 2 * src.numel() * src.element_size() / seconds


def describe_machine(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def run(args: argparse.Namespace) -> int:
    device = torch.device(args.device)
    dtype = DTYPES[args.dtype]
    if args.threads:
        torch.set_num_threads(args.threads)
    wanted = wanted_ops(args)
    others = [name for name in wanted if name != "lmhead"]
    cases = op_cases(args, device, dtype, others) if others else []
    print(f"# qwen-bench kernels: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, "
          f"{describe_machine(device)}, torch {torch.__version__}, {args.dtype}, {args.tokens} tokens, "
          f"hidden {args.hidden}, ffn {args.ffn}, {args.heads}x{args.head_dim} heads, median of {args.repeats}")
    if cases:
        table_of_cases(args, cases, device, dtype)
    if "lmhead" in wanted:
        from pretrain.bench.kernels_lmhead import lmhead_comparison

        lmhead_comparison(args, device, dtype)
    if args.model_preset != "none":
        model_step_comparison(args, device)
    return 0


def table_of_cases(args: argparse.Namespace, cases: list[OpCase], device: torch.device, dtype: torch.dtype) -> None:
    ceiling = copy_bandwidth(device, dtype, args.tokens * args.hidden, args.repeats)
    print(f"copy bandwidth (dst.copy_(src), {args.tokens}x{args.hidden}): {ceiling / 1e9:.1f} GB/s\n")
    print("| op | pass | implementation | time (ms) | speedup vs eager | GB/s (minimum bytes) | of copy bandwidth |")
    print("|---|---|---|---|---|---|---|")
    for case in cases:
        for label, make, moved in (("forward", forward_only, case.forward_bytes),
                                   ("forward+backward", forward_backward, case.forward_bytes + case.backward_bytes)):
            runs = {name: make(case, impl, name in case.overwrite_input)
                    for name, impl in case.implementations.items()
                    if label == "forward+backward" or name not in case.overwrite_input}
            medians = interleaved_medians(runs, args.repeats, device)
            for name, seconds in medians.items():
                rate = moved / seconds
                print(f"| {case.name} | {label} | {name} | {seconds * 1e3:.2f} | {medians['eager'] / seconds:.2f}x | "
                      f"{rate / 1e9:.1f} | {rate / ceiling:.0%} |", flush=True)


def model_step_comparison(args: argparse.Namespace, device: torch.device) -> None:
    """One training step (forward, backward, AdamW) of a preset's transformer layers built from
    the Qwen layer spec with model.kernels torch and fused, from the same weights. The embedding
    and output head are left out: the kernels do not touch them, and with Qwen's 151,936-row
    vocabulary they dominate a small model's step."""
    from megatron.core.transformer.transformer_block import TransformerBlock

    from pretrain.config import ModelConfig, ParallelConfig, fill_from_preset
    from pretrain.model.builder import transformer_config
    from pretrain.model.layer_spec import qwen_block_spec
    from pretrain.parallel.distributed import initialize_distributed

    initialize_distributed(ParallelConfig(), seed=1234)
    model = ModelConfig(preset=args.model_preset)
    fill_from_preset(model)
    config = transformer_config(model, ParallelConfig(), args.model_precision)
    seq = args.model_tokens // 2
    blocks = {mode: TransformerBlock(config, qwen_block_spec(model.num_layers, "sdpa", mode)).to(device)
              for mode in ("torch", "fused")}
    blocks["fused"].load_state_dict(blocks["torch"].state_dict())
    optimizers = {mode: torch.optim.AdamW(block.parameters(), lr=1e-4) for mode, block in blocks.items()}
    hidden = torch.randn(seq, 2, model.hidden_size, device=device, dtype=config.params_dtype)
    grad = torch.randn_like(hidden)
    freqs = reference.rotary_angles(seq, config.kv_channels).to(device)

    def step(mode: str) -> Timed:
        def run():
            out = blocks[mode](hidden, attention_mask=None, rotary_pos_emb=freqs)
            out.backward(grad)
            optimizers[mode].step()
            optimizers[mode].zero_grad(set_to_none=True)
        return (lambda: None), run

    medians = interleaved_medians({mode: step(mode) for mode in blocks}, args.repeats, device)
    print(f"\ntraining step, {args.model_preset} transformer layers ({model.num_layers} x hidden {model.hidden_size}, "
          f"ffn {model.ffn_hidden_size}), {args.model_tokens} tokens, {config.params_dtype}:\n")
    print("| model.kernels | step (ms) | tokens/s | speedup |")
    print("|---|---|---|---|")
    for mode, seconds in medians.items():
        print(f"| {mode} | {seconds * 1e3:.1f} | {args.model_tokens / seconds:,.0f} | "
              f"{medians['torch'] / seconds:.2f}x |", flush=True)
