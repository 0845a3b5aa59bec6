"""``qwen-generate``: continue prompts with a trained checkpoint (KV cache, Qwen's context extension).

Examples:
  qwen-generate --checkpoint runs/qwen-tiny/checkpoints --prompt "def fibonacci(n):"
  qwen-generate --checkpoint runs/qwen-tiny/checkpoints/step_00000100 --prompt-file prompts.jsonl \\
      --temperature 0.8 --top-p 0.95 --seed 1

With --prompt the continuation is printed as text; with --prompt-file (JSONL, one {"text": ...}
per line) one JSON line {"prompt": ..., "completion": ..., "completion_ids": [...]} per prompt (the new
token ids, to compare with another implementation). Timing goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path


class UsageError(ValueError):
    """A bad flag or input; the message names it."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def parse_args(argv=None) -> argparse.Namespace:
    parser = _Parser(prog="qwen-generate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, metavar="DIR",
                        help="a run's checkpoint directory (its latest) or one step_XXXXXXXX directory")
    prompt = parser.add_mutually_exclusive_group(required=True)
    prompt.add_argument("--prompt", help="the prompt text")
    prompt.add_argument("--prompt-file", metavar="FILE",
                        help='JSONL, one {"text": PROMPT} per line (read like the data tools\' input: '
                             '.jsonl.gz, .jsonl.zst and Parquet with a "text" column too)')
    parser.add_argument("--max-new-tokens", type=int, default=64,
                        help="stop after this many new tokens (default 64); prompt + new tokens may reach "
                             "16 x the training length")
    parser.add_argument("--temperature", type=float, default=0.0, help="0 (default): greedy; > 0: sample")
    parser.add_argument("--top-k", type=int, default=0, help="sample among the k likeliest tokens (0: all)")
    parser.add_argument("--top-p", type=float, default=1.0, help="sample within this probability mass (1: all)")
    parser.add_argument("--seed", type=int, help="seed for sampling (default: a fresh random one each run)")
    parser.add_argument("--no-dynamic-ntk", action="store_true",
                        help="keep the trained rotary base for prompts longer than the training length")
    parser.add_argument("--no-logn", action="store_true",
                        help="no LogN query scaling at positions past the training length")
    parser.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32", help="model precision (default fp32)")
    parser.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when available, else cpu")
    parser.add_argument("--batch-size", type=int, default=8, help="prompts of --prompt-file per forward (default 8)")
    return parser.parse_args(argv)


def read_prompts(args: argparse.Namespace) -> list[str]:
    if args.prompt is not None:
        if not args.prompt.strip():
            raise UsageError("--prompt is empty")
        return [args.prompt]
    from foundation.records.document import Rejection
    from foundation.records.reader import RecordParser, read_documents

    path = args.prompt_file
    if not Path(path).is_file():
        raise UsageError(f"--prompt-file {path}: no such file")
    prompts = []
    for item in read_documents(path, RecordParser()):  # the data tools' reader: JSONL (.gz, .zst), Parquet
        if isinstance(item, Rejection):
            raise UsageError(f"{item.source}:{item.line}: {item.error}")
        if not item.text.strip():
            raise UsageError(f'{path}:{item.line}: empty "text"')
        prompts.append(item.text)
    if not prompts:
        raise UsageError(f"{path}: no prompts")
    return prompts


def _check_numbers(args: argparse.Namespace, sampling) -> None:
    problems = sampling.check()
    if args.max_new_tokens < 1:
        problems.append(f"--max-new-tokens must be >= 1, got {args.max_new_tokens}")
    if args.batch_size < 1:
        problems.append(f"--batch-size must be >= 1, got {args.batch_size}")
    if problems:
        raise UsageError(problems[0])


def _device(requested: str | None) -> str:
    import torch

    if requested == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device available")
    return requested or ("cuda" if torch.cuda.is_available() else "cpu")


@dataclass
class Request:
    texts: list[str]
    prompts: list[list[int]]
    checkpoint: Path  # the step directory
    device: str


def prepare(args: argparse.Namespace) -> Request:
    """Everything checked before the model is loaded, cheapest first; UsageError,
    CheckpointNotFound or ConfigError name what is wrong."""
    from foundation.tokenizer import get_tokenizer
    from pretrain.generation.context_extension import MAX_LENGTH_FACTOR, max_total_length
    from pretrain.generation.loading import read_model_config
    from pretrain.generation.sampling import SamplingConfig
    from pretrain.parallel.distributed import world_size_from_env

    _check_numbers(args, SamplingConfig(args.temperature, args.top_k, args.top_p, args.seed))
    if world_size_from_env() > 1:
        raise UsageError("qwen-generate runs as one process (TP=1, PP=1): start it without torchrun or srun")
    texts = read_prompts(args)
    device = _device(args.device)
    step_dir, model_config = read_model_config(args.checkpoint)
    prompts = [get_tokenizer().encode(text) for text in texts]
    limit = max_total_length(model_config.seq_length)
    for number, prompt in enumerate(prompts, 1):
        if len(prompt) + args.max_new_tokens > limit:
            where = "--prompt" if args.prompt is not None else f"{args.prompt_file}: prompt {number}"
            raise UsageError(f"{where} ({len(prompt)} tokens) + --max-new-tokens {args.max_new_tokens} exceeds {limit} "
                             f"tokens ({MAX_LENGTH_FACTOR} x the training length {model_config.seq_length})")
    return Request(texts, prompts, step_dir, device)


def _fail(message: str) -> int:
    print(f"qwen-generate: error: {message.splitlines()[0]}", file=sys.stderr)
    return 2


@dataclass
class Summary:
    """Timing over all batches: prefill counts prompt tokens; decode counts one token per sequence
    per one-token forward (stopped sequences included, as they are computed)."""
    prompt_tokens: int = 0
    prefill_seconds: float = 0.0
    decode_tokens: int = 0
    decode_seconds: float = 0.0
    new_tokens: int = 0
    alphas: list = field(default_factory=list)

    def add(self, generation, batch_size: int) -> None:
        self.prompt_tokens += generation.prompt_tokens
        self.prefill_seconds += generation.prefill_seconds
        self.decode_tokens += generation.decode_forwards * batch_size
        self.decode_seconds += generation.decode_seconds
        self.new_tokens += sum(len(tokens) for tokens in generation.tokens)
        self.alphas += generation.alphas

    def __str__(self) -> str:
        prefill_rate = self.prompt_tokens / max(self.prefill_seconds, 1e-9)
        decode_rate = self.decode_tokens / max(self.decode_seconds, 1e-9)
        return (f"{self.new_tokens} new tokens kept; prefill {self.prompt_tokens} tokens in "
                f"{self.prefill_seconds:.3f} s ({prefill_rate:,.0f} tokens/s); decode {self.decode_tokens} tokens in "
                f"{self.decode_seconds:.3f} s ({decode_rate:,.1f} tokens/s)")


def run(argv=None) -> int:
    try:
        args = parse_args(argv)
    except UsageError as error:
        return _fail(str(error))
    from pretrain.checkpoint import CheckpointNotFound
    from pretrain.config import ConfigError

    try:
        request = prepare(args)
    except (UsageError, CheckpointNotFound, ConfigError) as error:
        return _fail(str(error))
    from tqdm import tqdm

    from foundation.tokenizer import get_tokenizer
    from pretrain.generation.context_extension import ExtensionSettings
    from pretrain.generation.generator import GenerationConfig, Generator
    from pretrain.generation.loading import load_checkpoint_model
    from pretrain.generation.sampling import SamplingConfig

    try:
        loaded = load_checkpoint_model(request.checkpoint, args.dtype, request.device)
    except CheckpointNotFound as error:
        return _fail(str(error))
    config = GenerationConfig(
        max_new_tokens=args.max_new_tokens,
        sampling=SamplingConfig(args.temperature, args.top_k, args.top_p, args.seed),
        extension=ExtensionSettings(dynamic_ntk=not args.no_dynamic_ntk, logn=not args.no_logn))
    generator, tokenizer = Generator(loaded.model, loaded.model_config), get_tokenizer()
    size = args.batch_size
    batches = [range(start, min(start + size, len(request.prompts))) for start in range(0, len(request.prompts), size)]
    summary = Summary()
    for batch in tqdm(batches, desc="qwen-generate", unit="batch", file=sys.stderr, disable=len(batches) == 1 or None):
        generation = generator.generate([request.prompts[index] for index in batch], config)
        for index, tokens in zip(batch, generation.tokens):
            completion = tokenizer.decode(tokens)
            if args.prompt is not None:
                print(completion, flush=True)
            else:
                print(json.dumps({"prompt": request.texts[index], "completion": completion,
                                  "completion_ids": [int(token) for token in tokens]}, ensure_ascii=False), flush=True)
        summary.add(generation, len(batch))
    print(f"qwen-generate: {loaded.checkpoint} ({args.dtype}, {request.device}); {len(request.prompts)} prompt(s); "
          f"NTK alpha {max(summary.alphas)} (max), LogN {'off' if args.no_logn else 'on'}; {summary}", file=sys.stderr)
    return 0


def main() -> None:
    sys.exit(run())


if __name__ == "__main__":
    main()
