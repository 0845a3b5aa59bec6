"""Qwen (v1) model sizes: the published ones (Qwen report, Table 1) and small ones for CPU."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class QwenDimensions:
    num_layers: int
    hidden_size: int
    num_attention_heads: int
    ffn_hidden_size: int  # per SwiGLU branch: HF's intermediate_size is twice this
    seq_length: int


PRESETS: dict[str, QwenDimensions] = {
    "qwen-tiny": QwenDimensions(num_layers=2, hidden_size=64, num_attention_heads=4, ffn_hidden_size=176, seq_length=128),
    "qwen-small": QwenDimensions(num_layers=4, hidden_size=256, num_attention_heads=4, ffn_hidden_size=688, seq_length=256),
    "qwen-1.8b": QwenDimensions(num_layers=24, hidden_size=2048, num_attention_heads=16, ffn_hidden_size=5504, seq_length=2048),
    "qwen-7b": QwenDimensions(num_layers=32, hidden_size=4096, num_attention_heads=32, ffn_hidden_size=11008, seq_length=2048),
    "qwen-14b": QwenDimensions(num_layers=40, hidden_size=5120, num_attention_heads=40, ffn_hidden_size=13696, seq_length=2048),
    "qwen-72b": QwenDimensions(num_layers=80, hidden_size=8192, num_attention_heads=64, ffn_hidden_size=24576, seq_length=2048),
}
