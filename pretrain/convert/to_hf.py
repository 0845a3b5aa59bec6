"""``qwen-convert to-hf``: a checkpoint as a Hugging Face ``Qwen2ForCausalLM`` directory.

Reads the checkpoint's sharded state (saved under any TP x PP x DP x ZeRO layout; each tensor
gathered from the chunks that hold it, :mod:`pretrain.checkpoint.tensors`) and its ``config.yaml``;
writes ``config.json``, ``generation_config.json`` and safetensors weights, sharded with an index
above ``--max-shard-size``. One tensor at a time is read, converted and appended to the file being
written (:mod:`pretrain.convert.safetensors_stream`), so memory holds one tensor and its parts.
The embedding and output layer get Qwen's TP=1 padding (151,936 rows for its vocabulary): padding
rows are cut or added as zeros. A model with Qwen's vocabulary (151,851 ids) gets Qwen's tokenizer
as ``tokenizer.json`` and its config files (pretrain.convert.tokenizer_files), so that
``AutoTokenizer`` and ``AutoModelForCausalLM`` load the directory offline; another vocabulary gets
no tokenizer files (the summary says so).
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from pretrain.checkpoint import CheckpointNotFound, resolve_checkpoint
from pretrain.checkpoint.storage import CheckpointDamaged
from pretrain.checkpoint.store import saved_tensors
from pretrain.checkpoint.tensors import CheckpointTensors
from pretrain.config import ConfigError, ModelConfig, saved_run_config
from pretrain.convert import ConversionError, progress
from pretrain.convert.hf import generation_config, plan_shards, qwen2_config, write_json, write_safetensors
from pretrain.convert.names import QWEN2, Layout, TensorMapping, fit_vocab, hf_shapes, megatron_shapes, to_hf
from pretrain.convert.staging import staged_directory
from pretrain.convert.tokenizer_files import QWEN_VOCAB_SIZE, write_qwen_tokenizer
from pretrain.model.vocab import padded_vocab_size

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
SIZE_UNITS = {"GIB": 2**30, "MIB": 2**20, "KIB": 2**10, "GB": 10**9, "MB": 10**6, "KB": 10**3, "B": 1}


@dataclass
class ExportSummary:
    output: Path
    parameters: int
    bytes: int
    files: int
    dtype: str
    seconds: float
    tokenizer: bool

    def line(self) -> str:
        tokenizer = "Qwen tokenizer" if self.tokenizer else "no tokenizer (not Qwen's vocabulary)"
        return (f"qwen-convert: wrote {self.output} (Qwen2ForCausalLM): {self.parameters:,} parameters, "
                f"{self.dtype}, {self.bytes:,} bytes in {self.files} safetensors file(s), {tokenizer}, "
                f"{self.seconds:.1f} s")


def parse_size(text: str) -> int:
    """Bytes from ``5GB`` (powers of 10), ``4GiB`` (powers of 2) or a plain number of bytes."""
    upper = text.strip().upper()
    unit = next((unit for unit in SIZE_UNITS if upper.endswith(unit)), "B")
    number = upper[:-len(unit)] if upper.endswith(unit) else upper
    try:
        size = int(float(number) * SIZE_UNITS[unit])
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size such as 5GB, 500MB or 2GiB") from None
    if size <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive size")
    return size


def _read_checkpoint(path: Path) -> tuple[Path, ModelConfig, CheckpointTensors]:
    try:
        checkpoint = resolve_checkpoint(path)
        model = saved_run_config(checkpoint).model
        return checkpoint, model, CheckpointTensors(saved_tensors(checkpoint))
    except (CheckpointNotFound, ConfigError, CheckpointDamaged) as error:
        raise ConversionError(str(error).splitlines()[0]) from None


class _Exporter:
    """Megatron tensors of one checkpoint as Qwen2 tensors of one dtype."""

    def __init__(self, checkpoint: Path, model: ModelConfig, saved: CheckpointTensors, dtype: torch.dtype):
        self.checkpoint, self.model, self.saved, self.dtype = checkpoint, model, saved, dtype
        self.vocab_rows = padded_vocab_size(model, 1)
        self.mappings = QWEN2.mappings(model.num_layers)
        shapes = megatron_shapes(model, self.vocab_rows)
        if missing := sorted(set(shapes) - set(saved.shapes)):
            raise ConversionError(f"{checkpoint}: the checkpoint has no tensor {missing[0]}")
        if extra := sorted(set(saved.shapes) - set(shapes)):
            raise ConversionError(f"{checkpoint}: the checkpoint has a tensor {extra[0]} that the model of "
                                  "its config.yaml does not")
        self.hf_shapes = {}
        for mapping in self.mappings:
            found, wanted = list(saved.shapes[mapping.megatron]), list(shapes[mapping.megatron])
            compared = slice(1, None) if mapping.layout is Layout.VOCAB else slice(None)  # rows are fitted later
            if found[compared] != wanted[compared]:
                raise ConversionError(f"{checkpoint}: {mapping.megatron} has shape {found}; "
                                      f"its config.yaml implies {wanted}")
            self.hf_shapes[mapping.megatron] = list(zip(mapping.hf, hf_shapes(mapping, shapes[mapping.megatron])))
        self.sizes = [math.prod(shapes[m.megatron]) * dtype.itemsize for m in self.mappings]

    def tensors(self, mapping: TensorMapping) -> dict[str, torch.Tensor]:
        tensor = self.saved.read(mapping.megatron)
        if mapping.layout is Layout.VOCAB:
            tensor = fit_vocab(tensor, self.vocab_rows, self.model.vocab_size, f"{self.checkpoint}: {mapping.megatron}")
        parts = to_hf(mapping, tensor.to(self.dtype), self.model.num_attention_heads)
        if self.dtype is torch.float16 and not all(torch.isfinite(part).all() for part in parts):
            raise ConversionError(f"{self.checkpoint}: {mapping.megatron} has values beyond the fp16 range; "
                                  "use --dtype bf16 or fp32")
        return dict(zip(mapping.hf, parts))

    def planned(self, ranges: list[range]) -> list[list[tuple[str, tuple[int, ...]]]]:
        """(name, shape) of the Hugging Face tensors of each shard, in order."""
        return [[part for index in shard for part in self.hf_shapes[self.mappings[index].megatron]]
                for shard in ranges]

    def stream(self, bar):
        """Every Hugging Face tensor in order, one megatron tensor read at a time."""
        for mapping in self.mappings:
            yield from self.tensors(mapping).items()
            bar.update()


def export_checkpoint(checkpoint: Path, output: Path, dtype: str = "bf16", max_shard_bytes: int = 5 * 10**9,
                      force: bool = False, tokenizer_file: Path | None = None) -> ExportSummary:
    start = time.perf_counter()
    exporter = _Exporter(*_read_checkpoint(checkpoint), DTYPES[dtype])
    ranges = plan_shards(exporter.sizes, max_shard_bytes)
    total_bytes = sum(exporter.sizes)
    with staged_directory(output, force) as staging, progress("to-hf", len(exporter.mappings), total_bytes) as bar:
        files = write_safetensors(staging, exporter.planned(ranges), exporter.dtype, exporter.stream(bar))
        write_json(staging / "config.json", qwen2_config(exporter.model, exporter.vocab_rows, exporter.dtype))
        write_json(staging / "generation_config.json", generation_config())
        with_tokenizer = exporter.model.vocab_size == QWEN_VOCAB_SIZE
        if with_tokenizer:
            write_qwen_tokenizer(staging, exporter.model.seq_length, tokenizer_file)
    return ExportSummary(output=output, parameters=total_bytes // exporter.dtype.itemsize, bytes=total_bytes,
                         files=len(files), dtype=dtype, seconds=time.perf_counter() - start, tokenizer=with_tokenizer)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", type=Path, metavar="CHECKPOINT",
                        help="a run's checkpoint directory (its latest checkpoint) or one step_XXXXXXXX directory")
    parser.add_argument("output", type=Path, metavar="OUTPUT_DIR", help="the Hugging Face directory to write")
    parser.add_argument("--dtype", choices=tuple(DTYPES), default="bf16",
                        help="dtype of the written weights (default bf16, as Qwen ships)")
    parser.add_argument("--max-shard-size", type=parse_size, default="5GB",
                        help="largest safetensors file, e.g. 5GB, 500MB, 2GiB (default 5GB); above it the "
                             "weights are sharded with model.safetensors.index.json")
    parser.add_argument("--force", action="store_true", help="replace OUTPUT_DIR when it exists and is not empty")
    parser.add_argument("--tokenizer-file", type=Path, metavar="QWEN_TIKTOKEN",
                        help="the qwen.tiktoken the tokenizer files are built from (default: the copy in the "
                             "dashscope package, as qwen-data tokenize uses)")


def run(args: argparse.Namespace) -> int:
    summary = export_checkpoint(args.checkpoint, args.output, args.dtype, args.max_shard_size, args.force,
                                args.tokenizer_file)
    print(summary.line())
    return 0
