"""``qwen-bench train``: training-step throughput of our stack vs Hugging Face Qwen2ForCausalLM.

Both models have the same Qwen dimensions, the same AdamW (torch, same groups, clipping 1.0) and
the same random token batches. Steps alternate between the two so machine load hits them alike.
Ours is the real path of ``qwen-train``: megatron-core GPTModel with the Qwen spec in a DeepSpeed
engine (ZeRO-0; in bf16 DeepSpeed's BF16_Optimizer, which keeps fp32 gradients and clips them).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import time

import torch


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", default="qwen-small")
    parser.add_argument("--seq-length", type=int, default=256)
    parser.add_argument("--micro-batch", type=int, default=2)
    parser.add_argument("--steps", type=int, default=6, help="timed steps per model")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per model first")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--kernels", choices=("auto", "fused", "torch"), default="auto",
                        help="model.kernels for our model (auto: fused when already built)")
    parser.add_argument("--json", metavar="PATH", help="also write the figures (tokens/s, both MFUs) to PATH")


def _hf_model(model_config, dtype):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from pretrain.model.vocab import padded_vocab_size

    hf_config = Qwen2Config(
        vocab_size=padded_vocab_size(model_config, 1), hidden_size=model_config.hidden_size,
        intermediate_size=model_config.ffn_hidden_size, num_hidden_layers=model_config.num_layers,
        num_attention_heads=model_config.num_attention_heads, num_key_value_heads=model_config.num_attention_heads,
        max_position_embeddings=model_config.seq_length, rope_theta=model_config.rotary_base,
        rms_norm_eps=model_config.norm_epsilon, tie_word_embeddings=False, attn_implementation="sdpa")
    return Qwen2ForCausalLM(hf_config).to(dtype)


def run(args: argparse.Namespace) -> int:
    from pretrain.config import load_config
    from pretrain.model.builder import build_model
    from pretrain.parallel.distributed import initialize_distributed
    from pretrain.training.engine import build_engine, clip_and_measure, deepspeed_reports_grad_norm
    from pretrain.training.metrics import device_peak_tflops, flops_per_token, model_flops_utilization
    from pretrain.training.optimizer import build_optimizer

    batch = args.micro_batch
    config = load_config(None, [f"model.preset={args.preset}", f"model.seq_length={args.seq_length}",
                                f"training.micro_batch_size={batch}", f"training.global_batch_size={batch}",
                                f"training.precision={args.precision}", "training.train_steps=1000",
                                f"model.kernels={args.kernels}"])
    initialize_distributed(config.parallel, config.training.seed)
    dtype = torch.bfloat16 if args.precision == "bf16" else torch.float32
    engine = build_engine(build_model(config.model, config.parallel, args.precision), config, 1)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    hf = _hf_model(config.model, dtype).to(device)
    hf_optimizer = build_optimizer(hf, config.optimizer, offload=False)

    def ours_step(tokens, positions):
        loss = engine(tokens, positions, None, labels=tokens).float().mean()
        engine.backward(loss)
        if not deepspeed_reports_grad_norm(config):  # as the training loop: else DeepSpeed clips in step()
            clip_and_measure(engine, config.optimizer.clip_grad)
        engine.step()

    def hf_step(tokens, positions):
        loss = hf(input_ids=tokens, labels=tokens).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(hf.parameters(), config.optimizer.clip_grad)
        hf_optimizer.step()
        hf_optimizer.zero_grad(set_to_none=True)

    generator = torch.Generator().manual_seed(0)
    times = {"ours": [], "hf": []}
    for step in range(args.warmup + args.steps):
        tokens = torch.randint(0, config.model.vocab_size, (batch, args.seq_length), generator=generator).to(device)
        positions = torch.arange(args.seq_length, device=device).expand(batch, -1)
        for name, step_fn in (("ours", ours_step), ("hf", hf_step)):
            start = time.perf_counter()
            step_fn(tokens, positions)
            if device.type == "cuda":  # the step's kernels are queued, not done, when it returns
                torch.cuda.synchronize()
            if step >= args.warmup:
                times[name].append(time.perf_counter() - start)

    tokens_per_step = batch * args.seq_length
    rate = {name: tokens_per_step / statistics.median(values) for name, values in times.items()}
    parameters = {"ours": sum(p.numel() for p in engine.module.parameters()), "hf": sum(p.numel() for p in hf.parameters())}
    print(f"qwen-bench train: {args.preset}, seq {args.seq_length}, micro-batch {batch}, {args.precision}, "
          f"kernels {args.kernels}, {args.steps} timed steps (median), {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{'CUDA ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'CPU'}\n")
    print("| model | parameters | step time (s) | tokens/s | vs HF |\n|---|---|---|---|---|")
    for name, label in (("ours", "qwen-pretrain: megatron-core GPTModel + DeepSpeed engine"),
                        ("hf", "transformers Qwen2ForCausalLM (SDPA) + torch AdamW")):
        print(f"| {label} | {parameters[name]:,} | {statistics.median(times[name]):.3f} | {rate[name]:,.0f} | "
              f"{rate[name] / rate['hf']:.2f}x |")
    flops = flops_per_token(config.model)
    peak, peak_source = device_peak_tflops(None, args.precision)
    mfu = {name: {"causal": model_flops_utilization(rate[name], flops.causal, peak, 1),
                  "palm": model_flops_utilization(rate[name], flops.palm, peak, 1)} for name in rate}
    print(f"\nMFU against {peak:.3g} TFLOP/s ({peak_source}): ours {100 * mfu['ours']['causal']:.1f}% "
          f"(6N + causal attention, {flops.causal / 1e9:.2f} GFLOP/token), {100 * mfu['ours']['palm']:.1f}% "
          f"(PaLM, {flops.palm / 1e9:.2f}); HF {100 * mfu['hf']['causal']:.1f}% / {100 * mfu['hf']['palm']:.1f}%")
    if args.json:
        figures = {"preset": args.preset, "seq_length": args.seq_length, "micro_batch": batch,
                   "precision": args.precision, "kernels": args.kernels, "peak_tflops": peak,
                   "peak_source": peak_source, "flops_per_token": {"causal": flops.causal, "palm": flops.palm},
                   "tokens_per_second": rate, "step_seconds": {n: statistics.median(v) for n, v in times.items()},
                   "mfu": mfu}
        with open(args.json, "w") as handle:
            json.dump(figures, handle, indent=1)
    return 0
