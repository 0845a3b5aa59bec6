"""Per-token perplexity of documents under a checkpoint of this project, batched through its
megatron-core model.

Any checkpoint ``qwen-train`` saved or ``qwen-convert from-hf`` wrote loads here (at TP=1 PP=1, in
this process; once per worker process). Each document is ``<|endoftext|>`` followed by its tokens
(as in training, where documents follow an end-of-document token), cut into windows of the model's
training length that overlap by one token, so every token is predicted once with up to a window of
context. Windows are sorted by length and packed into batches of about ``batch_tokens`` tokens
(token-length buckets: little padding). Padding sits after each window's tokens, so under causal
attention no real token sees it, and its loss is masked out. torch is imported where the model
runs, so that scoring without ``--perplexity`` does not pay for importing it.
"""

from __future__ import annotations

import contextlib
import functools
import math
import sys
from dataclasses import dataclass
from typing import Sequence

from tools.stage.errors import InputError
from tools.tokenize.shard import TokenizerSpec


@dataclass(frozen=True)
class LanguageModelSpec:
    checkpoint: str
    tokenizer: TokenizerSpec = TokenizerSpec()
    device: str = "auto"  # auto: the GPU when present, else the CPU
    precision: str = "fp32"
    batch_tokens: int = 16_384  # padded tokens per forward
    max_tokens: int = 8_192  # tokens scored per document (its beginning)
    threads: int = 0  # torch threads per worker process (0: torch's default)

    def resolved_device(self) -> str:
        import torch

        if self.device != "auto":
            return self.device
        return "cuda" if torch.cuda.is_available() else "cpu"


def check_language_model(spec: LanguageModelSpec):
    """The checkpoint's model config, after checking that the checkpoint exists and that the
    tokenizer's vocabulary is the one the model was trained with; one ``InputError`` line when not.
    Cheap (reads config.yaml only): the CLI calls it before any work."""
    from pretrain.checkpoint import CheckpointNotFound
    from pretrain.config import ConfigError
    from pretrain.generation.loading import read_model_config

    try:
        step_dir, model_config = read_model_config(spec.checkpoint)
    except (CheckpointNotFound, ConfigError) as error:
        raise InputError(f"--perplexity {spec.checkpoint}: {str(error).splitlines()[0]}") from None
    tokenizer = spec.tokenizer.check()
    if tokenizer.vocab_size != model_config.vocab_size:
        raise InputError(f"--perplexity {step_dir}: the model was trained on a vocabulary of {model_config.vocab_size:,} "
                         f"tokens, the tokenizer ({tokenizer.vocab_file}) has {tokenizer.vocab_size:,}: "
                         "score with the tokenizer the checkpoint was trained with (--tokenizer-file/--tokenizer-json)")
    return model_config


def _join_single_process_group() -> None:
    """A world of one, through an in-memory store: no port is opened and no peer is waited for
    (megatron-core's model needs its parallel state, which needs a process group)."""
    import torch

    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group("gloo", store=torch.distributed.HashStore(), rank=0, world_size=1)


class DocumentPerplexity:
    """The loaded model and tokenizer of one process."""

    def __init__(self, spec: LanguageModelSpec):
        import torch

        from pretrain.generation.loading import load_checkpoint_model

        model_config = check_language_model(spec)
        if spec.threads:
            torch.set_num_threads(spec.threads)
        _join_single_process_group()
        with contextlib.redirect_stdout(sys.stderr):  # library notices are not the stage's output
            self.loaded = load_checkpoint_model(spec.checkpoint, spec.precision, spec.resolved_device())
        self.tokenizer = spec.tokenizer.load()
        self.window = model_config.seq_length
        self.spec = spec

    def windows(self, texts: Sequence[str]) -> tuple[list[tuple[int, list[int]]], list[int]]:
        """(document index, window tokens) for every window; the token count of each document."""
        windows, counts = [], []
        for index, ids in enumerate(self.tokenizer.encode_batch(list(texts))):
            tokens = [self.tokenizer.eod, *ids[:self.spec.max_tokens]]
            counts.append(len(tokens) - 1)
            windows += [(index, tokens[start:start + self.window + 1]) for start in range(0, len(tokens) - 1, self.window)]
        return windows, counts

    def batches(self, windows: list[tuple[int, list[int]]]) -> list[list[tuple[int, list[int]]]]:
        """Windows sorted by length, packed while rows x longest row stays within ``batch_tokens``."""
        batches, current = [], []
        for item in sorted(windows, key=lambda w: len(w[1])):
            if current and (len(current) + 1) * len(item[1]) > self.spec.batch_tokens:
                batches.append(current)
                current = []
            current.append(item)
        return batches + ([current] if current else [])

    def __call__(self, texts: Sequence[str]) -> list[tuple[float | None, int]]:
        """(perplexity, tokens) per text; perplexity None for a text without tokens."""
        windows, counts = self.windows(texts)
        losses = [0.0] * len(texts)
        for batch in self.batches(windows):
            for index, loss in zip((index for index, _ in batch), self.summed_losses(batch)):
                losses[index] += loss
        return [(round(math.exp(loss / count), 4) if count else None, count) for loss, count in zip(losses, counts)]

    def summed_losses(self, batch: list[tuple[int, list[int]]]) -> list[float]:
        """The summed negative log-likelihood of each window's predicted tokens, in one forward."""
        import torch

        device = self.spec.resolved_device()
        with torch.no_grad():
            width = max(len(tokens) for _, tokens in batch) - 1
            inputs = torch.full((len(batch), width + 1), self.tokenizer.eod, dtype=torch.long)
            mask = torch.zeros(len(batch), width)
            for row, (_, tokens) in enumerate(batch):
                inputs[row, :len(tokens)] = torch.tensor(tokens)
                mask[row, :len(tokens) - 1] = 1
            inputs = inputs.to(device)
            positions = torch.arange(width, device=device).expand(len(batch), width)
            loss = self.loaded.model(inputs[:, :-1], positions, None, labels=inputs[:, 1:]).float().cpu() * mask
        return loss.sum(dim=1).tolist()


@functools.lru_cache(maxsize=2)
def document_perplexity(spec: LanguageModelSpec) -> DocumentPerplexity:
    """The model of ``spec``, loaded on first use in each process."""
    return DocumentPerplexity(spec)
