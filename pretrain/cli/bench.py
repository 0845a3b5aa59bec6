"""``qwen-bench``: benchmarks whose figures go to docs/benchmarks.md (never timed tests)."""

from __future__ import annotations

import sys

from foundation.dispatch import run_subcommand

COMMANDS = {
    "train": ("pretrain.bench.train", "training-step tokens/s vs Hugging Face Qwen2ForCausalLM"),
    "context": ("pretrain.bench.context", "perplexity at 1-8x the training length with/without Qwen's context extension"),
    "memory": ("pretrain.bench.memory", "per-rank parameter/gradient/optimizer bytes for ZeRO 0-3"),
    "checkpoint": ("pretrain.bench.checkpoint", "sharded checkpoint save/load time, memory and disk at three layouts "
                                                "(--baseline-code: the format before it, side by side)"),
    "kernels": ("pretrain.bench.kernels", "fused RMSNorm/SwiGLU/RoPE (and --ops lmhead: output layer + loss) vs eager PyTorch and torch.compile"),
    "dedup": ("tools.bench.dedup", "MinHash dedup precision/recall and signature throughput"),
    "tokenize": ("tools.bench.tokenize", "end-to-end tokenization MB/s vs raw tiktoken"),
    "decontaminate": ("tools.bench.decontaminate", "13-gram decontamination MB/s per core"),
    "score": ("tools.bench.score", "docs/s per core of each qwen-data score scorer: perplexity (qwen-tiny, "
                                   "qwen-small), the quality classifier, the offensive word lists"),
}


def main() -> None:
    sys.exit(run_subcommand("qwen-bench", __doc__, COMMANDS))

