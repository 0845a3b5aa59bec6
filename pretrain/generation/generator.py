"""Generation with megatron-core's KV cache (``StaticInferenceContext``) and Qwen's context extension.

One prefill forward over the (left-padded) prompts fills the cache; then one forward per new token
feeds the last token of every sequence. megatron-core keeps the keys and values of each layer in
the context, applies RoPE by cache offset and, after the prefill, attends without a causal mask.
Left padding does not move a real token's rotary phase relative to another's, so it changes no
attention score; the padding itself is masked out, and the LogN factors use each token's position
within its own prompt. Each prompt's NTK alpha comes from its own length at prefill and holds for
its whole generation (Qwen's behaviour), so a prompt within the training length is generated
exactly as without the extension until it grows past it, where LogN starts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from megatron.core.inference.contexts import StaticInferenceContext
from megatron.core.models.gpt import GPTModel

from foundation.tokenizer import EOD_ID
from pretrain.config import ModelConfig
from pretrain.generation.context_extension import ExtensionSettings, max_total_length
from pretrain.generation.extended_model import ContextExtension
from pretrain.generation.sampling import Sampler, SamplingConfig

# Qwen's special tokens follow the BPE ranks in this order: <|endoftext|>, <|im_start|>, <|im_end|>.
IM_END_ID = EOD_ID + 2


@dataclass(frozen=True)
class GenerationConfig:
    max_new_tokens: int = 64
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    extension: ExtensionSettings = field(default_factory=ExtensionSettings)
    stop_tokens: tuple[int, ...] = (EOD_ID, IM_END_ID)


@dataclass
class Generation:
    tokens: list[list[int]]  # new tokens per prompt, the stop token left out
    stopped: list[bool]  # ended at a stop token (else at max_new_tokens)
    alphas: list[int]  # the NTK alpha each prompt was generated with
    prompt_tokens: int
    prefill_seconds: float
    decode_forwards: int  # one-token forwards after the prefill, each over the whole batch
    decode_seconds: float


def _prefill_mask(padding: torch.Tensor) -> torch.Tensor:
    """megatron mask (True = may not attend) [batch, 1, W, W] for left-padded prompts: causal, no
    padded keys; a padding query sees itself only, so no row is empty (an empty row gives NaN)."""
    width = padding.size(1)
    future = torch.ones(width, width, dtype=torch.bool, device=padding.device).triu(1)
    itself = torch.eye(width, dtype=torch.bool, device=padding.device)
    return ((future | padding[:, None, None, :]) & ~itself)


class Generator:
    def __init__(self, model: GPTModel, model_config: ModelConfig):
        self.model, self.model_config = model, model_config
        self.device = next(model.parameters()).device

    @torch.no_grad()
    def generate(self, prompts: list[list[int]], config: GenerationConfig) -> Generation:
        lengths = [len(prompt) for prompt in prompts]
        if not lengths or min(lengths) == 0:
            raise ValueError("no prompt, or an empty one")
        if config.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {config.max_new_tokens}")
        width = max(lengths)
        total = width + config.max_new_tokens
        limit = max_total_length(self.model_config.seq_length)
        if total > limit:
            raise ValueError(f"prompt ({width} tokens) + {config.max_new_tokens} new tokens exceeds {limit} tokens")
        batch = len(prompts)
        tokens = torch.full((batch, width), EOD_ID, dtype=torch.long)
        for row, prompt in enumerate(prompts):
            tokens[row, width - len(prompt):] = torch.tensor(prompt)
        pads = torch.tensor([width - length for length in lengths])
        padding = torch.arange(total)[None] < pads[:, None]  # [batch, total], True on left padding
        padded = bool(pads.any())
        sample = Sampler(config.sampling, self.model_config.vocab_size, self.device)
        context = StaticInferenceContext(batch, total)
        stops = torch.tensor(config.stop_tokens or [-1])

        with ContextExtension(self.model, self.model_config, config.extension) as extension:
            alphas = extension.set_lengths(lengths)
            positions = torch.arange(width)[None] - pads[:, None]  # within each prompt; padding < 0
            extension.set_query_positions(positions + 1)
            start = time.perf_counter()
            logits = self._forward(context, tokens, positions.clamp(min=0),
                                   _prefill_mask(padding[:, :width]) if padded else None)
            new = [sample(logits).cpu()]  # the copy to the CPU also waits for a GPU
            prefill_seconds = time.perf_counter() - start
            finished = torch.isin(new[-1], stops)
            start = time.perf_counter()
            context.enable_decode_mode()
            for step in range(1, config.max_new_tokens):
                if bool(finished.all()):
                    break
                positions = torch.tensor(lengths)[:, None] + step - 1  # of the token fed now
                extension.set_query_positions(positions + 1)
                logits = self._forward(context, new[-1][:, None], positions,
                                       padding[:, None, None, :width + step] if padded else None)
                new.append(sample(logits).cpu())
                finished |= torch.isin(new[-1], stops)
            decode_seconds = time.perf_counter() - start

        generated = torch.stack(new, dim=1).tolist()
        kept, stopped = [], []
        for row in generated:
            ends = [index for index, token in enumerate(row) if token in config.stop_tokens]
            kept.append(row[:ends[0]] if ends else row)
            stopped.append(bool(ends))
        return Generation(kept, stopped, alphas, sum(lengths), prefill_seconds, len(new) - 1, decode_seconds)

    def _forward(self, context: StaticInferenceContext, tokens: torch.Tensor, positions: torch.Tensor,
                 mask: torch.Tensor | None) -> torch.Tensor:
        """Logits [batch, vocab] of the last position; advances the cache offset."""
        device = self.device
        logits = self.model(tokens.to(device), positions.to(device), None if mask is None else mask.to(device),
                            inference_context=context, runtime_gather_output=True)
        context.increment_sequence_len_offset(tokens.size(1))
        return logits[:, -1]
