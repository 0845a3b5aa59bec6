"""Qwen's context extension applied to megatron-core's GPTModel from outside, the model unchanged.

:class:`ContextExtension` is a context manager. On entry it swaps the model's rotary embedding for
:class:`DynamicNTKRotaryEmbedding` and puts a forward pre-hook on every layer's core attention that
multiplies the query (RoPE already applied) by its LogN factor; on exit the model is as it was.
Its user says what the next forwards see: :meth:`ContextExtension.set_lengths` (the sequence
lengths that fix each sequence's NTK alpha, kept for a whole generation as in Qwen) and
:meth:`ContextExtension.set_query_positions` (the absolute positions of the tokens fed next).
"""

from __future__ import annotations

import torch
from megatron.core.models.common.embeddings.rotary_pos_embedding import RotaryEmbedding
from megatron.core.models.gpt import GPTModel

from pretrain.config import ModelConfig
from pretrain.generation.context_extension import (ExtensionSettings, logn_scale, ntk_alpha, ntk_rotary_base,
                                                   rotary_inverse_frequencies)


class DynamicNTKRotaryEmbedding(RotaryEmbedding):
    """megatron-core's rotary embedding with the base chosen per sequence.

    megatron memoizes ``RotaryEmbedding.forward`` on its arguments (``lru_cache``), so a changed
    ``inv_freq`` would go unseen; this forward keeps its last table only until the bases change.
    With one base the table is megatron's [S, 1, 1, d]; with one base per sequence it is
    [S, B, 1, d], which megatron's rotary application broadcasts over heads like the former.
    """

    def __init__(self, rotary_dim: int, base: float, device: torch.device):
        super().__init__(rotary_dim, rotary_percent=1.0, rotary_base=base, use_cpu_initialization=True)
        self.base, self.rotary_dim, self.device = base, rotary_dim, device
        self.set_alphas([1])

    def set_alphas(self, alphas: list[int]) -> None:
        rows = alphas if len(set(alphas)) > 1 else alphas[:1]
        self.inv_freq = torch.stack([
            rotary_inverse_frequencies(ntk_rotary_base(self.base, alpha, self.rotary_dim), self.rotary_dim, self.device)
            for alpha in rows])
        self._table: tuple[tuple[int, int], torch.Tensor] | None = None

    def forward(self, max_seq_len: int, offset: int = 0, packed_seq: bool = False, cp_group=None) -> torch.Tensor:
        if self._table is None or self._table[0] != (max_seq_len, offset):
            positions = torch.arange(max_seq_len, dtype=torch.float32, device=self.device) + offset
            freqs = positions[:, None, None] * self.inv_freq  # [S, rows, d/2], as megatron's outer product
            self._table = ((max_seq_len, offset), torch.cat((freqs, freqs), dim=-1)[:, :, None, :])
        return self._table[1]


class ContextExtension:
    """Dynamic NTK and LogN on ``model`` while entered (both switchable by ``settings``)."""

    def __init__(self, model: GPTModel, model_config: ModelConfig, settings: ExtensionSettings):
        self.model, self.settings = model, settings
        self.train_length = model_config.seq_length
        device = next(model.parameters()).device
        # The builder hands megatron an integer base; the same one keeps alpha = 1 bit-exact.
        self.rotary = DynamicNTKRotaryEmbedding(model.config.kv_channels, int(model_config.rotary_base), device)
        self._query_scale: torch.Tensor | None = None
        self._saved_rotary: torch.nn.Module | None = None
        self._hooks: list = []

    def __enter__(self) -> ContextExtension:
        self._saved_rotary = self.model.rotary_pos_emb
        self.model.rotary_pos_emb = self.rotary
        self._hooks = [
            layer.self_attention.core_attention.register_forward_pre_hook(self._scale_query, with_kwargs=True)
            for layer in self.model.decoder.layers]
        return self

    def __exit__(self, *exc_info) -> None:
        for hook in self._hooks:
            hook.remove()
        self._hooks = []
        self.model.rotary_pos_emb = self._saved_rotary

    def set_lengths(self, lengths: list[int]) -> list[int]:
        """Fix each sequence's rotary base from its length; returns the alphas."""
        alphas = [ntk_alpha(length, self.train_length) if self.settings.dynamic_ntk else 1 for length in lengths]
        self.rotary.set_alphas(alphas)
        return alphas

    def set_query_positions(self, positions: torch.Tensor) -> None:
        """1-based absolute positions [batch, tokens] of the tokens in the next forward."""
        scale = logn_scale(positions, self.train_length)
        if not self.settings.logn or bool((scale == 1).all()):
            self._query_scale = None
        else:  # queries are [tokens, batch, heads, head_dim]
            self._query_scale = scale.t()[:, :, None, None].to(next(self.model.parameters()).device)

    def _scale_query(self, module, args, kwargs):
        if self._query_scale is None:
            return None
        query = args[0]
        return (query * self._query_scale.to(query.dtype), *args[1:]), kwargs


def extended_forward(model: GPTModel, model_config: ModelConfig, settings: ExtensionSettings,
                     tokens: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
    """One uncached forward over whole sequences [batch, L]: alpha from L, LogN by position.
    Logits [batch, L, vocab], or megatron's per-token loss [batch, L] when ``labels`` are given."""
    batch, length = tokens.shape
    positions = torch.arange(length, device=tokens.device).expand(batch, length)
    with ContextExtension(model, model_config, settings) as extension:
        extension.set_lengths([length] * batch)
        extension.set_query_positions(positions + 1)
        return model(tokens, positions, None, labels=labels)
