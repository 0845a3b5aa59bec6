"""``qwen-bench context``: perplexity beyond the training length with and without Qwen's extension.

The held-out text is what the run never trained on: the documents of a megatron indexed dataset
past the run's training split (``data.split``, as megatron-core's GPTDataset assigns them). Windows
of ``max multiple x T + 1`` tokens are cut from within single documents (T the training length);
for each length L = multiple x T every variant scores the first L + 1 tokens of the same windows
with one uncached forward (NTK alpha from L, LogN by position) and reports exp(mean next-token
loss) over all L predictions. The table mirrors Table 3 of the Qwen report.
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import sys

import numpy as np
import torch

from foundation.dispatch import positive_int

VARIANTS = {"no extension": (False, False), "dynamic NTK": (True, False), "NTK + LogN": (True, True)}


def _multiples(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"multiples must be >= 1, got {text!r}")
    return sorted(set(values))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="a run's checkpoint directory or a step_XXXXXXXX directory")
    parser.add_argument("--data", metavar="PREFIX",
                        help="megatron .bin/.idx prefix (default: the run's first data prefix; for the embedded "
                             "corpus its python-code part, whose documents are long)")
    parser.add_argument("--multiples", type=_multiples, default=[1, 2, 4, 8],
                        help="lengths as multiples of the training length (default 1,2,4,8)")
    parser.add_argument("--sequences", type=positive_int, default=8, help="held-out windows scored at every length (default 8)")
    parser.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32")


def _default_prefix(run_config) -> str:
    if run_config.data.prefixes:
        return run_config.data.prefixes[0]
    from pretrain.data.embedded import build_embedded_corpus

    prefixes, _ = build_embedded_corpus(run_config.data.cache_dir or ".cache/qwen-pretrain")
    return next(prefix for prefix in prefixes if prefix.endswith("python-code"))


def held_out_windows(prefix: str, split: str, length: int, count: int) -> list[np.ndarray]:
    """Up to ``count`` non-overlapping windows of ``length`` tokens from the documents past the
    training split, each from within one document."""
    from megatron.core.datasets.blended_megatron_dataset_config import parse_and_normalize_split
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    dataset = IndexedDataset(prefix)
    first = int(round(parse_and_normalize_split(split)[0] * len(dataset)))
    windows = []
    for index in range(first, len(dataset)):
        document = dataset[index]
        for start in range(0, len(document) - length + 1, length):
            windows.append(np.asarray(document[start:start + length], dtype=np.int64))
            if len(windows) == count:
                return windows
    return windows


def _error(message: str) -> int:
    print(f"qwen-bench context: error: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from pretrain.checkpoint import CheckpointNotFound, resolve_checkpoint
    from pretrain.config import ConfigError, saved_run_config
    from pretrain.generation.context_extension import ExtensionSettings
    from pretrain.generation.extended_model import extended_forward
    from pretrain.generation.loading import load_checkpoint_model

    try:
        step_dir = resolve_checkpoint(args.checkpoint)
        run_config = saved_run_config(step_dir)
    except (CheckpointNotFound, ConfigError) as error:
        return _error(str(error).splitlines()[0])
    model_config = run_config.model
    train_length = model_config.seq_length
    prefix = args.data or _default_prefix(run_config)
    if not (os.path.exists(f"{prefix}.bin") and os.path.exists(f"{prefix}.idx")):
        return _error(f"{prefix}.bin/.idx: no such dataset")
    longest = max(args.multiples) * train_length
    windows = held_out_windows(prefix, run_config.data.split, longest + 1, args.sequences)
    if not windows:
        return _error(f"{prefix}: no held-out document (past split {run_config.data.split}) has {longest + 1} tokens")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    loaded = load_checkpoint_model(step_dir, args.dtype, device)

    losses = {}  # (multiple, variant) -> summed loss
    jobs = [(multiple, variant, window) for multiple in args.multiples for variant in VARIANTS for window in windows]
    with torch.no_grad():
        for multiple, variant, window in tqdm(jobs, desc="qwen-bench context", file=sys.stderr, disable=None):
            length = multiple * train_length
            tokens = torch.from_numpy(window[:length + 1])[None].to(device)
            settings = ExtensionSettings(*VARIANTS[variant])
            loss = extended_forward(loaded.model, model_config, settings, tokens[:, :-1], labels=tokens[:, 1:])
            losses[multiple, variant] = losses.get((multiple, variant), 0.0) + loss.float().sum().item()

    print(f"qwen-bench context: {step_dir} (training length {train_length}, {args.dtype}); {len(windows)} held-out "
          f"windows of {prefix} (documents past split {run_config.data.split}); "
          f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{'CUDA ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'CPU'}\n")
    print("| length | x training | " + " | ".join(f"{name} (ppl)" for name in VARIANTS) + " |")
    print("|---|---|" + "---|" * len(VARIANTS))
    for multiple in args.multiples:
        length = multiple * train_length
        cells = [f"{math.exp(losses[multiple, name] / (length * len(windows))):,.2f}" for name in VARIANTS]
        print(f"| {length} | {multiple}x | " + " | ".join(cells) + " |")
    return 0
