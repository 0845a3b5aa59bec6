"""``qwen-convert from-hf``: a Hugging Face Qwen2 or Qwen (v1) directory as a step-0 checkpoint.

The family comes from config.json's ``model_type`` (``qwen2``: ``Qwen2ForCausalLM`` names;
``qwen``: Qwen v1's remote-code names). Names and every shape are checked against config.json
before any tensor is read. The output is a checkpoint directory holding ``step_00000000`` with the
weights as its sharded state (fp32, Qwen's TP=1 vocabulary padding, no optimizer state, so any
layout loads it), a ``config.yaml`` whose model section carries the Hugging Face sizes,
``train_state.json`` at step 0, the ``COMPLETE`` marker and ``latest``: what ``to-hf``,
``checkpoint.init_weights`` and a resuming run read. Each tensor is read from the source,
converted and written before the next (:func:`pretrain.checkpoint.tensors.write_weights`).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from foundation.atomic_write import write_text_atomic
from foundation.dispatch import positive_int
from pretrain.checkpoint import COMPLETE_MARKER, LATEST, STATE_DIR, TrainState, tag_for
from pretrain.checkpoint.tensors import write_weights
from pretrain.config import CHECKPOINT_CONFIG_FILE, ModelConfig, RunConfig
from pretrain.convert import ConversionError, progress
from pretrain.convert.hf import HFModelConfig, HFWeights, read_config
from pretrain.convert.names import NAMINGS, Layout, TensorMapping, fit_vocab, from_hf, hf_shapes, megatron_shapes
from pretrain.convert.staging import staged_directory
from pretrain.model.presets import PRESETS
from pretrain.model.vocab import padded_vocab_size

# Qwen pretrained with a 2048-token context (report, section 2.4); config.json's maximum
# (up to 32768) would make a default training run needlessly long.
DEFAULT_SEQ_LENGTH_CAP = 2048
# Derived buffers some exporters save next to the weights; they carry nothing to import.
IGNORED_SUFFIXES = ("rotary_emb.inv_freq",)


@dataclass
class ImportSummary:
    output: Path
    model_type: str
    model: ModelConfig
    parameters: int
    seconds: float
    notes: list[str] = field(default_factory=list)

    def line(self) -> str:
        model = self.model
        return (f"qwen-convert: wrote {self.output / tag_for(0)} from a {self.model_type} model: "
                f"{self.parameters:,} parameters ({model.num_layers} layers, hidden {model.hidden_size}, "
                f"{model.num_attention_heads} heads, ffn {model.ffn_hidden_size}, vocabulary {model.vocab_size}, "
                f"seq_length {model.seq_length}), {self.seconds:.1f} s")


def _preset_for(config: HFModelConfig) -> str:
    """The preset of these sizes, else the one nearest in hidden size: a label only, as every size is set."""
    sizes = (config.num_layers, config.hidden_size, config.num_attention_heads, config.ffn_hidden_size)
    for name, preset in PRESETS.items():
        if (preset.num_layers, preset.hidden_size, preset.num_attention_heads, preset.ffn_hidden_size) == sizes:
            return name
    return min(PRESETS, key=lambda name: abs(PRESETS[name].hidden_size - config.hidden_size))


def _model_config(config: HFModelConfig, seq_length: int | None,
                  vocab_size: int | None) -> tuple[ModelConfig, list[str]]:
    """Our model section for a Hugging Face model, and notes on the values chosen for it."""
    notes = []
    if seq_length is None:
        seq_length = min(config.max_positions, DEFAULT_SEQ_LENGTH_CAP)
        if seq_length < config.max_positions:
            notes.append(f"seq_length {seq_length} (config.json allows {config.max_positions}; --seq-length sets it)")
    if vocab_size is None:
        vocab_size = min(config.vocab_rows, ModelConfig().vocab_size)  # Qwen's tokenizer has 151,851 tokens
    elif vocab_size > config.vocab_rows:
        raise ConversionError(f"--vocab-size {vocab_size} exceeds config.json's vocab_size {config.vocab_rows}")
    model = ModelConfig(
        preset=_preset_for(config), num_layers=config.num_layers, hidden_size=config.hidden_size,
        num_attention_heads=config.num_attention_heads, ffn_hidden_size=config.ffn_hidden_size,
        seq_length=seq_length, vocab_size=vocab_size, rotary_base=config.rotary_base,
        norm_epsilon=config.norm_epsilon)
    return model, notes


def _expected_shapes(mappings: list[TensorMapping], model: ModelConfig, vocab_rows: int) -> dict[str, tuple[int, ...]]:
    shapes = megatron_shapes(model, vocab_rows)
    return {name: shape for mapping in mappings
            for name, shape in zip(mapping.hf, hf_shapes(mapping, shapes[mapping.megatron]))}


def _check_tensors(weights: HFWeights, expected: dict[str, tuple[int, ...]], directory: Path, model_type: str) -> None:
    present = set(weights.names)
    if missing := [name for name in expected if name not in present]:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise ConversionError(f"{directory}: missing tensor {missing[0]}{more}")
    if extra := sorted(name for name in present - set(expected) if not name.endswith(IGNORED_SUFFIXES)):
        raise ConversionError(f"{directory}: unexpected tensor {extra[0]}, not part of a {model_type} model "
                              "with this config.json")
    for name, shape in expected.items():
        if weights.shape(name) != shape:
            raise ConversionError(f"{directory}: tensor {name} has shape {list(weights.shape(name))}; "
                                  f"config.json implies {list(shape)}")


def _write_checkpoint(directory: Path, weights: HFWeights, mappings: list[TensorMapping], model: ModelConfig,
                      source: Path) -> int:
    """The files of a complete checkpoint as :mod:`pretrain.checkpoint` names them, weights only;
    returns the number of parameters."""
    rows = padded_vocab_size(model, 1)
    shapes = megatron_shapes(model, rows)
    by_name = {mapping.megatron: mapping for mapping in mappings}
    nbytes = 4 * sum(math.prod(shape) for shape in shapes.values())
    tag = tag_for(0)
    with progress("from-hf", len(mappings), nbytes) as bar:
        def convert(name: str) -> torch.Tensor:
            mapping = by_name[name]
            tensor = from_hf(mapping, [weights.load(part).float() for part in mapping.hf], model.num_attention_heads)
            if mapping.layout is Layout.VOCAB:
                tensor = fit_vocab(tensor, rows, model.vocab_size, f"{source}: {mapping.hf[0]}")
            bar.update()
            return tensor

        write_weights(directory / tag / STATE_DIR, shapes, convert)
    write_text_atomic(directory / tag / "train_state.json", json.dumps(asdict(TrainState())), durable=True)
    write_text_atomic(directory / tag / CHECKPOINT_CONFIG_FILE, RunConfig(model=model).to_yaml(), durable=True)
    write_text_atomic(directory / tag / COMPLETE_MARKER, "", durable=True)
    write_text_atomic(directory / LATEST, tag, durable=True)
    return sum(math.prod(shape) for shape in shapes.values())


def import_checkpoint(hf_dir: Path, output: Path, seq_length: int | None = None, vocab_size: int | None = None,
                      force: bool = False) -> ImportSummary:
    start = time.perf_counter()
    config = read_config(hf_dir)
    model, notes = _model_config(config, seq_length, vocab_size)
    mappings = NAMINGS[config.model_type].mappings(model.num_layers)
    weights = HFWeights(hf_dir)
    _check_tensors(weights, _expected_shapes(mappings, model, config.vocab_rows), hf_dir, config.model_type)
    with staged_directory(output, force) as staging:
        parameters = _write_checkpoint(staging, weights, mappings, model, hf_dir)
    return ImportSummary(output=output, model_type=config.model_type, model=model, parameters=parameters,
                         seconds=time.perf_counter() - start, notes=notes)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("hf_dir", type=Path, metavar="HF_DIR",
                        help="directory with config.json and model.safetensors, sharded safetensors with "
                             "model.safetensors.index.json, or pytorch_model*.bin")
    parser.add_argument("output", type=Path, metavar="OUTPUT_CHECKPOINT_DIR",
                        help="checkpoint directory to create (step_00000000 and latest inside); use it as "
                             "checkpoint.init_weights")
    parser.add_argument("--seq-length", type=positive_int,
                        help=f"model.seq_length of the checkpoint's config.yaml (default: config.json's "
                             f"max_position_embeddings or seq_length, at most {DEFAULT_SEQ_LENGTH_CAP})")
    parser.add_argument("--vocab-size", type=positive_int,
                        help="real tokens of the vocabulary; rows beyond are padding (default: config.json's "
                             "vocab_size, at most the 151,851 of Qwen's tokenizer)")
    parser.add_argument("--force", action="store_true",
                        help="replace OUTPUT_CHECKPOINT_DIR when it exists and is not empty")


def run(args: argparse.Namespace) -> int:
    summary = import_checkpoint(args.hf_dir, args.output, args.seq_length, args.vocab_size, args.force)
    for note in summary.notes:
        print(f"qwen-convert: note: {note}", file=sys.stderr)
    print(summary.line())
    return 0
