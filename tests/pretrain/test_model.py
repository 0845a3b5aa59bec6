"""The Qwen model built on megatron-core: sizes and the math of its forward pass."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from pretrain.config import ModelConfig, ParallelConfig, fill_from_preset
from pretrain.model.builder import build_model, count_parameters
from pretrain.model.presets import PRESETS


def preset(name: str, **changes) -> ModelConfig:
    model = ModelConfig(preset=name, **changes)
    fill_from_preset(model)
    return model


def test_qwen_7b_parameter_count_matches_the_published_model():
    parts = count_parameters(preset("qwen-7b"))
    assert parts["total"] == 7_721_324_544
    assert parts["input_embedding"] == parts["output_layer"] == 151_936 * 4096
    assert parts["layers"] == 32 * 202_395_648


@pytest.mark.parametrize("name, billions", [("qwen-1.8b", 1.84), ("qwen-14b", 14.2), ("qwen-72b", 72.0)])
def test_published_presets_have_their_reported_size(name, billions):
    assert count_parameters(preset(name))["total"] / 1e9 == pytest.approx(billions, rel=0.03)


def test_every_preset_pads_the_vocabulary_like_qwen():
    for name in PRESETS:
        assert count_parameters(preset(name))["input_embedding"] == 151_936 * PRESETS[name].hidden_size


def test_built_model_has_exactly_the_analytic_parameter_count(single_process_groups):
    for name in ("qwen-tiny", "qwen-small"):
        model = build_model(preset(name), ParallelConfig())
        assert sum(p.numel() for p in model.parameters()) == count_parameters(preset(name))["total"]


def test_only_the_qkv_projection_has_a_bias(single_process_groups):
    model = build_model(preset("qwen-tiny"), ParallelConfig())
    biases = [name for name, _ in model.named_parameters() if name.endswith("bias")]
    assert biases and all("linear_qkv" in name for name in biases)
    assert model.output_layer.weight.data_ptr() != model.embedding.word_embeddings.weight.data_ptr()


def _rms_norm(x, weight, eps=1e-6):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def _rotate_half(x):
    first, second = x.chunk(2, dim=-1)
    return torch.cat((-second, first), dim=-1)


def qwen_reference_logits(weights: dict, tokens: torch.Tensor, model: ModelConfig) -> torch.Tensor:
    """Qwen v1 written out in plain PyTorch, from megatron-core's parameter layout."""
    heads, head_dim = model.num_attention_heads, model.hidden_size // model.num_attention_heads
    batch, seq = tokens.shape
    inv_freq = 1.0 / (model.rotary_base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    angles = torch.cat([torch.outer(torch.arange(seq, dtype=torch.float32), inv_freq)] * 2, dim=-1)
    cos, sin = angles.cos()[None, None], angles.sin()[None, None]
    causal = torch.ones(seq, seq, dtype=torch.bool).triu(1)
    hidden = weights["embedding.word_embeddings.weight"][tokens]
    for layer in range(model.num_layers):
        w = {k.split(f"decoder.layers.{layer}.", 1)[1]: v for k, v in weights.items()
             if k.startswith(f"decoder.layers.{layer}.")}
        x = _rms_norm(hidden, w["input_layernorm.weight"])
        qkv = x @ w["self_attention.linear_qkv.weight"].T + w["self_attention.linear_qkv.bias"]
        # megatron-core groups the projection per head as [q_h | k_h | v_h]
        q, k, v = qkv.view(batch, seq, heads, 3, head_dim).permute(3, 0, 2, 1, 4)
        q, k = q * cos + _rotate_half(q) * sin, k * cos + _rotate_half(k) * sin
        scores = (q @ k.transpose(-1, -2)) / head_dim**0.5
        attention = scores.masked_fill(causal, float("-inf")).softmax(-1) @ v
        hidden = hidden + attention.transpose(1, 2).reshape(batch, seq, -1) @ w["self_attention.linear_proj.weight"].T
        x = _rms_norm(hidden, w["pre_mlp_layernorm.weight"])
        gate, up = (x @ w["mlp.linear_fc1.weight"].T).chunk(2, dim=-1)
        hidden = hidden + (F.silu(gate) * up) @ w["mlp.linear_fc2.weight"].T
    hidden = _rms_norm(hidden, weights["decoder.final_layernorm.weight"])
    return hidden @ weights["output_layer.weight"].T


# The two attention backends that run on a CPU compute the same thing (flash-attn needs CUDA).
@pytest.mark.parametrize("attention_backend", ["sdpa", "unfused"])
def test_forward_equals_a_plain_pytorch_qwen(attention_backend, single_process_groups):
    model_config = preset("qwen-tiny", seq_length=24, attention_backend=attention_backend)
    model = build_model(model_config, ParallelConfig()).eval()
    # Random (not initial) norms and biases, so every term of the math is exercised.
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if parameter.ndim == 1:
                parameter.copy_(torch.randn_like(parameter) * 0.5 + (1.0 if "norm" in name else 0.0))
    tokens = torch.randint(0, 151_851, (2, 24))
    positions = torch.arange(24).expand(2, 24)
    # megatron's unfused attention builds its default causal mask on device="cuda"; given one (True
    # where attention is not allowed), it runs on a CPU too.
    mask = torch.ones(24, 24, dtype=torch.bool).triu(1).view(1, 1, 24, 24) if attention_backend == "unfused" else None
    with torch.no_grad():
        logits = model(tokens, positions, mask)
        weights = {name: p.detach() for name, p in model.named_parameters()}
        expected = qwen_reference_logits(weights, tokens, model_config)
    assert logits.shape == (2, 24, 151_936)
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=1e-5)


def test_rotary_inverse_frequencies_are_fp32_even_in_bf16(single_process_groups):
    model = build_model(preset("qwen-tiny"), ParallelConfig(), precision="bf16")
    assert model.rotary_pos_emb.inv_freq.dtype == torch.float32
    assert dataclasses.is_dataclass(model.config) and model.config.bf16
