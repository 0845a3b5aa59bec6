"""A safetensors file written one tensor at a time.

The safetensors library serializes a dict of tensors held in memory, so a 5 GB shard costs 5 GB
(twice while it serializes). The format is simple: an 8-byte little-endian header length, a JSON
header giving every tensor's dtype, shape and byte range, then the bytes in that order. Every
shape is known before any tensor is read, so the header goes first and each tensor's bytes follow
as the tensor is made: memory holds one tensor. ``safe_open`` and transformers read the result
like any other file (tests/pretrain/test_convert.py).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from pathlib import Path

import torch

DTYPE_CODES = {torch.float32: "F32", torch.bfloat16: "BF16", torch.float16: "F16"}
ALIGNMENT = 8  # the header is padded with spaces so the data starts 8-byte aligned, as safetensors does


def _header(planned: list[tuple[str, tuple[int, ...]]], dtype: torch.dtype) -> bytes:
    entries, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, shape in planned:
        size = math.prod(shape) * dtype.itemsize
        entries[name] = {"dtype": DTYPE_CODES[dtype], "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(entries, separators=(",", ":")).encode()
    text += b" " * (-(len(text) + 8) % ALIGNMENT)
    return len(text).to_bytes(8, "little") + text


def write_safetensors_file(path: Path, planned: list[tuple[str, tuple[int, ...]]], dtype: torch.dtype,
                           tensors: Iterator[tuple[str, torch.Tensor]], mode: int) -> int:
    """``path`` holding the ``planned`` (name, shape) tensors, taken in that order from ``tensors``
    (each must match its plan); returns the tensor bytes written."""
    written = 0
    with open(path, "wb") as handle:
        handle.write(_header(planned, dtype))
        for name, shape in planned:
            given, tensor = next(tensors)
            if given != name or tuple(tensor.shape) != tuple(shape) or tensor.dtype != dtype:
                raise ValueError(f"{path}: expected {name} {list(shape)} {dtype}, got {given} "
                                 f"{list(tensor.shape)} {tensor.dtype}")
            handle.write(tensor.contiguous().view(-1).view(torch.uint8).numpy().data)
            written += tensor.nbytes
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(path, mode)
    return written
