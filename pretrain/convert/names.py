"""Where each megatron-core parameter of the Qwen model lives in a Hugging Face checkpoint.

Names: megatron-core ``GPTModel``'s parameter names in a one-stage model (layer N global; the
checkpoint stacks the layers, :mod:`pretrain.checkpoint.tensors`) against Qwen2
(``Qwen2ForCausalLM`` in transformers) and Qwen v1 (``QWenLMHeadModel``, remote code). The tensor
layouts differ in two places:

- QKV: megatron-core fuses the projection per head: ``linear_qkv`` viewed as
  ``[heads, 3, head_dim, ...]`` holds q, k, v of head 0, then of head 1, ... (its
  ``SelfAttention.get_query_key_value_tensors`` with one query group per head). Qwen2 has separate
  q/k/v projections; Qwen v1's ``c_attn`` holds contiguous q | k | v blocks.
- SwiGLU: megatron's ``linear_fc1`` is [gate; up] (it computes ``silu(first half) * second half``).
  Qwen2 names them ``gate_proj`` / ``up_proj``; Qwen v1 computes ``w1(x) * silu(w2(x))``, so ``w2``
  is the gate.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import torch

from pretrain.config import ModelConfig
from pretrain.convert import ConversionError


class Layout(Enum):
    SAME = "same"
    VOCAB = "vocab"  # one row per token id; how many padding rows follow depends on the layout
    QKV = "qkv"
    GATE_UP = "gate_up"


@dataclass(frozen=True)
class TensorMapping:
    megatron: str
    hf: tuple[str, ...]  # one name, or the parts in order: (q, k, v) or (gate, up)
    layout: Layout


@dataclass(frozen=True)
class HFNaming:
    """The tensor names of one Hugging Face model family."""

    model_type: str  # config.json's model_type
    embedding: str
    final_norm: str
    output: str
    layer_prefix: str  # formatted with layer=N
    layer: tuple[tuple[str, tuple[str, ...], Layout], ...]  # (megatron suffix, HF suffixes, layout)

    def mappings(self, num_layers: int) -> list[TensorMapping]:
        """Every tensor of the model, in order: embedding, layers, final norm, output layer."""
        mappings = [TensorMapping("embedding.word_embeddings.weight", (self.embedding,), Layout.VOCAB)]
        for index in range(num_layers):
            prefix = self.layer_prefix.format(layer=index)
            mappings += [TensorMapping(f"decoder.layers.{index}.{ours}", tuple(prefix + n for n in theirs), layout)
                         for ours, theirs, layout in self.layer]
        return mappings + [TensorMapping("decoder.final_layernorm.weight", (self.final_norm,), Layout.SAME),
                           TensorMapping("output_layer.weight", (self.output,), Layout.VOCAB)]


QWEN2 = HFNaming(
    model_type="qwen2", embedding="model.embed_tokens.weight", final_norm="model.norm.weight",
    output="lm_head.weight", layer_prefix="model.layers.{layer}.",
    layer=(
        ("input_layernorm.weight", ("input_layernorm.weight",), Layout.SAME),
        ("self_attention.linear_qkv.weight",
         ("self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight"), Layout.QKV),
        ("self_attention.linear_qkv.bias",
         ("self_attn.q_proj.bias", "self_attn.k_proj.bias", "self_attn.v_proj.bias"), Layout.QKV),
        ("self_attention.linear_proj.weight", ("self_attn.o_proj.weight",), Layout.SAME),
        ("pre_mlp_layernorm.weight", ("post_attention_layernorm.weight",), Layout.SAME),
        ("mlp.linear_fc1.weight", ("mlp.gate_proj.weight", "mlp.up_proj.weight"), Layout.GATE_UP),
        ("mlp.linear_fc2.weight", ("mlp.down_proj.weight",), Layout.SAME),
    ))

QWEN_V1 = HFNaming(
    model_type="qwen", embedding="transformer.wte.weight", final_norm="transformer.ln_f.weight",
    output="lm_head.weight", layer_prefix="transformer.h.{layer}.",
    layer=(
        ("input_layernorm.weight", ("ln_1.weight",), Layout.SAME),
        ("self_attention.linear_qkv.weight", ("attn.c_attn.weight",), Layout.QKV),
        ("self_attention.linear_qkv.bias", ("attn.c_attn.bias",), Layout.QKV),
        ("self_attention.linear_proj.weight", ("attn.c_proj.weight",), Layout.SAME),
        ("pre_mlp_layernorm.weight", ("ln_2.weight",), Layout.SAME),
        ("mlp.linear_fc1.weight", ("mlp.w2.weight", "mlp.w1.weight"), Layout.GATE_UP),
        ("mlp.linear_fc2.weight", ("mlp.c_proj.weight",), Layout.SAME),
    ))

NAMINGS = {naming.model_type: naming for naming in (QWEN2, QWEN_V1)}


def megatron_shapes(model: ModelConfig, vocab_rows: int) -> dict[str, tuple[int, ...]]:
    """The unsharded shape of every parameter of the Qwen model."""
    hidden, ffn = model.hidden_size, model.ffn_hidden_size
    layer = {"input_layernorm.weight": (hidden,), "self_attention.linear_qkv.weight": (3 * hidden, hidden),
             "self_attention.linear_qkv.bias": (3 * hidden,), "self_attention.linear_proj.weight": (hidden, hidden),
             "pre_mlp_layernorm.weight": (hidden,), "mlp.linear_fc1.weight": (2 * ffn, hidden),
             "mlp.linear_fc2.weight": (hidden, ffn)}
    shapes = {"embedding.word_embeddings.weight": (vocab_rows, hidden)}
    for index in range(model.num_layers):
        shapes.update({f"decoder.layers.{index}.{name}": shape for name, shape in layer.items()})
    return shapes | {"decoder.final_layernorm.weight": (hidden,), "output_layer.weight": (vocab_rows, hidden)}


def hf_shapes(mapping: TensorMapping, megatron_shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    """The shape of each Hugging Face part of a megatron tensor (parts split the first dimension)."""
    first, *rest = megatron_shape
    return [(first // len(mapping.hf), *rest)] * len(mapping.hf)


def fit_vocab(tensor: torch.Tensor, rows: int, vocab_size: int, name: str) -> torch.Tensor:
    """A ``Layout.VOCAB`` tensor with ``rows`` rows: padding rows (index >= ``vocab_size``) cut or
    added as zeros; never a real token's row."""
    if tensor.shape[0] == rows:
        return tensor
    if tensor.shape[0] < vocab_size:
        raise ConversionError(f"{name}: {tensor.shape[0]} rows for a vocabulary of {vocab_size} tokens")
    if tensor.shape[0] > rows:
        if rows < vocab_size:
            raise ConversionError(f"{name}: cutting {tensor.shape[0]} rows to {rows} would drop real tokens "
                                  f"(the vocabulary has {vocab_size}; only padding rows may go)")
        return tensor[:rows]
    return torch.cat([tensor, tensor.new_zeros((rows - tensor.shape[0], *tensor.shape[1:]))])


def _qkv_blocks(per_head: torch.Tensor, heads: int) -> torch.Tensor:
    """[q_0; k_0; v_0; q_1; ...] -> [q; k; v]."""
    return per_head.reshape(heads, 3, -1, *per_head.shape[1:]).transpose(0, 1).reshape(per_head.shape)


def _qkv_per_head(blocks: torch.Tensor, heads: int) -> torch.Tensor:
    """[q; k; v] -> [q_0; k_0; v_0; q_1; ...]."""
    return blocks.reshape(3, heads, -1, *blocks.shape[1:]).transpose(0, 1).reshape(blocks.shape)


def to_hf(mapping: TensorMapping, tensor: torch.Tensor, heads: int) -> list[torch.Tensor]:
    """A megatron tensor as its Hugging Face parts, in ``mapping.hf`` order."""
    if mapping.layout is Layout.QKV:
        tensor = _qkv_blocks(tensor, heads)
    return [part.contiguous() for part in tensor.chunk(len(mapping.hf))]


def from_hf(mapping: TensorMapping, parts: list[torch.Tensor], heads: int) -> torch.Tensor:
    """The megatron tensor made of its Hugging Face parts, given in ``mapping.hf`` order."""
    tensor = torch.cat(parts) if len(parts) > 1 else parts[0]
    return _qkv_per_head(tensor, heads) if mapping.layout is Layout.QKV else tensor
