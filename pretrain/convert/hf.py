"""Hugging Face model directories: ``config.json``, weight files (safetensors or torch ``.bin``,
single or sharded with an index) and writing safetensors shards one tensor at a time."""

from __future__ import annotations

import json
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
from safetensors import SafetensorError, safe_open

from foundation.tokenizer import EOD_ID
from pretrain.config import ModelConfig
from pretrain.convert import ConversionError
from pretrain.convert.safetensors_stream import write_safetensors_file

# Looked for in this order; an index names the shard files.
WEIGHT_FILES = ("model.safetensors.index.json", "model.safetensors", "pytorch_model.bin.index.json",
                "pytorch_model.bin")
INDEX_FILE = "model.safetensors.index.json"
TORCH_DTYPE_NAMES = {torch.bfloat16: "bfloat16", torch.float16: "float16", torch.float32: "float32"}


@dataclass(frozen=True)
class HFModelConfig:
    """What a Hugging Face ``config.json`` says about the model, in our terms."""

    model_type: str  # qwen2 | qwen
    num_layers: int
    hidden_size: int
    num_attention_heads: int
    ffn_hidden_size: int  # per SwiGLU branch
    vocab_rows: int  # config.json's vocab_size: embedding rows, padding included
    max_positions: int
    rotary_base: float
    norm_epsilon: float


def _positive_int(config: dict, key: str, path: Path, default: int | None = None) -> int:
    if key not in config:
        if default is not None:
            return default
        raise ConversionError(f"{path}: missing field {key}")
    value = config[key]
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ConversionError(f"{path}: {key} must be a positive integer, got {value!r}")
    return value


def _qwen2_config(config: dict, path: Path) -> HFModelConfig:
    heads = _positive_int(config, "num_attention_heads", path)
    kv_heads = config.get("num_key_value_heads") or heads
    if kv_heads != heads:
        raise ConversionError(f"{path}: num_key_value_heads {kv_heads} differs from num_attention_heads {heads}: "
                              "grouped-query attention is not supported (Qwen v1 attention is multi-head)")
    if config.get("hidden_act", "silu") != "silu":
        raise ConversionError(f"{path}: hidden_act {config['hidden_act']!r} is not supported (Qwen uses silu)")
    if config.get("use_sliding_window"):
        raise ConversionError(f"{path}: use_sliding_window is true; only full causal attention is supported")
    rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    if rope_type != "default":
        raise ConversionError(f"{path}: RoPE type {rope_type!r} is not supported (only unscaled RoPE)")
    hidden = _positive_int(config, "hidden_size", path)
    if config.get("head_dim", hidden // heads) != hidden // heads:
        raise ConversionError(f"{path}: head_dim {config['head_dim']} is not hidden_size / num_attention_heads")
    return HFModelConfig(
        model_type="qwen2", num_layers=_positive_int(config, "num_hidden_layers", path), hidden_size=hidden,
        num_attention_heads=heads, ffn_hidden_size=_positive_int(config, "intermediate_size", path),
        vocab_rows=_positive_int(config, "vocab_size", path),
        max_positions=_positive_int(config, "max_position_embeddings", path, default=32_768),
        rotary_base=float(rope.get("rope_theta", config.get("rope_theta", 10_000.0))),
        norm_epsilon=float(config.get("rms_norm_eps", 1e-6)))


def _qwen_v1_config(config: dict, path: Path) -> HFModelConfig:
    heads, hidden = _positive_int(config, "num_attention_heads", path), _positive_int(config, "hidden_size", path)
    intermediate = _positive_int(config, "intermediate_size", path)
    if intermediate % 2:
        raise ConversionError(f"{path}: intermediate_size {intermediate} is odd; Qwen v1 gives both SwiGLU "
                              "branches together, so it must be even")
    if config.get("kv_channels", hidden // heads) != hidden // heads:
        raise ConversionError(f"{path}: kv_channels {config['kv_channels']} is not hidden_size / num_attention_heads")
    if config.get("rotary_pct", 1.0) != 1.0:
        raise ConversionError(f"{path}: rotary_pct {config['rotary_pct']} is not supported (RoPE on the full head)")
    return HFModelConfig(
        model_type="qwen", num_layers=_positive_int(config, "num_hidden_layers", path), hidden_size=hidden,
        num_attention_heads=heads, ffn_hidden_size=intermediate // 2,
        vocab_rows=_positive_int(config, "vocab_size", path),
        max_positions=_positive_int(config, "seq_length" if "seq_length" in config else "max_position_embeddings",
                                    path, default=2048),
        rotary_base=float(config.get("rotary_emb_base", 10_000.0)),
        norm_epsilon=float(config.get("layer_norm_epsilon", 1e-6)))


def read_config(directory: Path) -> HFModelConfig:
    """``directory/config.json`` of a Qwen2 or Qwen (v1) model; anything else is refused by name."""
    path = directory / "config.json"
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConversionError(f"{path}: not found (a Hugging Face model directory holds one)") from None
    except (OSError, ValueError) as error:
        raise ConversionError(f"{path}: cannot read ({error})") from None
    model_type = config.get("model_type")
    if model_type not in ("qwen2", "qwen"):
        raise ConversionError(f"{path}: model_type {model_type!r} is not supported (qwen2 or qwen)")
    if config.get("tie_word_embeddings", False):
        raise ConversionError(f"{path}: tie_word_embeddings is true: tied input and output embeddings are not "
                              "supported (Qwen keeps them separate)")
    return _qwen2_config(config, path) if model_type == "qwen2" else _qwen_v1_config(config, path)


def qwen2_config(model: ModelConfig, vocab_rows: int, dtype: torch.dtype) -> dict[str, Any]:
    """A ``Qwen2ForCausalLM`` config.json. The RoPE base is given both as ``rope_theta`` (what
    transformers 4.x reads) and in ``rope_parameters`` (where 5.x keeps it)."""
    return {
        "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2",
        "vocab_size": vocab_rows, "hidden_size": model.hidden_size, "intermediate_size": model.ffn_hidden_size,
        "num_hidden_layers": model.num_layers, "num_attention_heads": model.num_attention_heads,
        "num_key_value_heads": model.num_attention_heads, "hidden_act": "silu",
        "max_position_embeddings": model.seq_length, "rms_norm_eps": model.norm_epsilon,
        "rope_theta": model.rotary_base, "rope_parameters": {"rope_type": "default", "rope_theta": model.rotary_base},
        "tie_word_embeddings": False, "use_sliding_window": False, "attention_dropout": model.attention_dropout,
        "initializer_range": model.init_method_std, "use_cache": True,
        "bos_token_id": EOD_ID, "eos_token_id": EOD_ID, "torch_dtype": TORCH_DTYPE_NAMES[dtype],
    }


def generation_config() -> dict[str, Any]:
    """Qwen's base models end a text with <|endoftext|>, which also pads."""
    return {"bos_token_id": EOD_ID, "eos_token_id": EOD_ID, "pad_token_id": EOD_ID}


def _weight_files(directory: Path) -> list[Path]:
    for name in WEIGHT_FILES:
        path = directory / name
        if not path.is_file():
            continue
        if not name.endswith(".index.json"):
            return [path]
        try:
            weight_map = json.loads(path.read_text())["weight_map"]
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ConversionError(f"{path}: not a weight index ({error!r})") from None
        return [directory / file for file in sorted(set(weight_map.values()))]
    raise ConversionError(f"{directory}: no weights (looked for {', '.join(WEIGHT_FILES)})")


class HFWeights:
    """The tensors of a model directory by name, each read from disk only when asked for."""

    def __init__(self, directory: Path):
        self._safetensors: dict[str, Any] = {}  # name -> open safetensors file
        self._torch: dict[str, torch.Tensor] = {}  # name -> memory-mapped tensor of a .bin file
        for path in _weight_files(directory):
            try:
                if path.suffix == ".safetensors":
                    handle = safe_open(str(path), framework="pt")
                    self._safetensors.update(dict.fromkeys(handle.keys(), handle))
                else:
                    self._torch.update(torch.load(path, map_location="cpu", mmap=True, weights_only=True))
            except (OSError, RuntimeError, pickle.UnpicklingError, SafetensorError) as error:
                raise ConversionError(f"{path}: cannot read weights ({str(error).splitlines()[0]})") from None

    @property
    def names(self) -> list[str]:
        return [*self._safetensors, *self._torch]

    def shape(self, name: str) -> tuple[int, ...]:
        if name in self._safetensors:
            return tuple(self._safetensors[name].get_slice(name).get_shape())
        return tuple(self._torch[name].shape)

    def load(self, name: str) -> torch.Tensor:
        return self._safetensors[name].get_tensor(name) if name in self._safetensors else self._torch[name]


def plan_shards(sizes: Sequence[int], max_bytes: int) -> list[range]:
    """Consecutive runs of items of at most ``max_bytes`` together (an item larger than that alone)."""
    shards, start, total = [], 0, 0
    for index, size in enumerate(sizes):
        if index > start and total + size > max_bytes:
            shards.append(range(start, index))
            start, total = index, 0
        total += size
    return shards + [range(start, len(sizes))]


def write_safetensors(directory: Path, shards: Sequence[Sequence[tuple[str, tuple[int, ...]]]], dtype: torch.dtype,
                      tensors: Iterator[tuple[str, torch.Tensor]]) -> list[str]:
    """Each planned shard (a list of (name, shape)) to its own file, taking the tensors from
    ``tensors`` in plan order as they come (one in memory at a time), named as transformers names
    them, plus the index when there is more than one; returns the files."""
    count = len(shards)
    names = (["model.safetensors"] if count == 1
             else [f"model-{index:05d}-of-{count:05d}.safetensors" for index in range(1, count + 1)])
    weight_map, total_bytes = {}, 0
    umask = os.umask(0)
    os.umask(umask)
    for name, planned in zip(names, shards, strict=True):
        total_bytes += write_safetensors_file(directory / name, list(planned), dtype, tensors, 0o666 & ~umask)
        weight_map.update(dict.fromkeys((tensor for tensor, _ in planned), name))
    if count > 1:
        write_json(directory / INDEX_FILE, {"metadata": {"total_size": total_bytes}, "weight_map": weight_map})
    return names


def write_json(path: Path, content: dict) -> None:
    path.write_text(json.dumps(content, indent=2) + "\n")
