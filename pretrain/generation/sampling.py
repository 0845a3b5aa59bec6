"""Choosing the next token from logits: greedy, or temperature / top-k / top-p sampling."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class SamplingConfig:
    temperature: float = 0.0  # 0: greedy (argmax)
    top_k: int = 0  # 0: no top-k cut
    top_p: float = 1.0  # 1: no nucleus cut
    seed: int | None = None  # None: a fresh random stream each run

    def check(self) -> list[str]:
        problems = []
        if self.temperature < 0:
            problems.append(f"--temperature must be >= 0, got {self.temperature}")
        if self.top_k < 0:
            problems.append(f"--top-k must be >= 0, got {self.top_k}")
        if not 0 < self.top_p <= 1:
            problems.append(f"--top-p must be in (0, 1], got {self.top_p}")
        return problems


class Sampler:
    """Next tokens for a batch of logits [batch, vocab]; ids from ``allowed_vocab`` on are never
    chosen (the embedding rows megatron pads the vocabulary with)."""

    def __init__(self, config: SamplingConfig, allowed_vocab: int, device: torch.device):
        self.config, self.allowed_vocab = config, allowed_vocab
        self.generator = torch.Generator(device=device)
        if config.seed is None:
            self.generator.seed()
        else:
            self.generator.manual_seed(config.seed)

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        logits = logits[:, :self.allowed_vocab].float()
        if self.config.temperature == 0:
            return logits.argmax(dim=-1)
        logits = logits / self.config.temperature
        if 0 < self.config.top_k < logits.size(-1):
            kth_best = logits.topk(self.config.top_k, dim=-1).values[:, -1:]
            logits = logits.masked_fill(logits < kth_best, float("-inf"))
        if self.config.top_p < 1:
            logits = _nucleus(logits, self.config.top_p)
        probabilities = logits.softmax(dim=-1)
        return torch.multinomial(probabilities, 1, generator=self.generator).squeeze(-1)


def _nucleus(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Keep the most likely tokens whose probabilities sum to ``top_p`` (the best one always)."""
    ordered, order = logits.sort(dim=-1, descending=True)
    probabilities = ordered.softmax(dim=-1)
    mass_before = probabilities.cumsum(dim=-1) - probabilities
    ordered = ordered.masked_fill(mass_before >= top_p, float("-inf"))
    return torch.full_like(logits, float("-inf")).scatter(-1, order, ordered)
