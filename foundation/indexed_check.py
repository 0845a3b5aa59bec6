"""Check a megatron indexed dataset (.bin/.idx) before anything trains on it.

megatron-core's reader asserts or reads garbage on a damaged pair; this reads the index header
directly and compares it with both files' sizes, so a truncated ``.bin`` or a mismatched ``.idx``
is reported as one line naming the file, at start-up, instead of deep inside a data loader.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

import numpy as np

# magic (9) + version (8) + dtype code (1) + sequence count (8) + document count (8)
_HEADER_BYTES = 34


class DatasetFileError(ValueError):
    """A damaged or missing dataset file; the message starts with the file's path."""


@dataclass(frozen=True)
class IndexedDatasetSummary:
    prefix: str
    num_documents: int
    num_sequences: int
    num_tokens: int
    dtype: str


def verify_indexed_dataset(prefix: str) -> IndexedDatasetSummary:
    # Imported here: loading megatron.core takes seconds, too long for a CLI's error path.
    from megatron.core.datasets.indexed_dataset import _INDEX_HEADER, DType, get_bin_path, get_idx_path

    idx_path, bin_path = get_idx_path(prefix), get_bin_path(prefix)
    for path in (idx_path, bin_path):
        if not os.path.isfile(path):
            raise DatasetFileError(f"{path}: missing (data prefix {prefix!r} needs both .bin and .idx)")
    idx_size = os.path.getsize(idx_path)
    if idx_size < _HEADER_BYTES:
        raise DatasetFileError(f"{idx_path}: truncated index ({idx_size} bytes, header alone is {_HEADER_BYTES})")
    with open(idx_path, "rb") as stream:
        if stream.read(9) != _INDEX_HEADER:
            raise DatasetFileError(f"{idx_path}: not a megatron indexed-dataset index (bad magic)")
        (version,) = struct.unpack("<Q", stream.read(8))
        (dtype_code,) = struct.unpack("<B", stream.read(1))
        num_sequences, num_documents_plus_one = struct.unpack("<QQ", stream.read(16))
    if version != 1:
        raise DatasetFileError(f"{idx_path}: index version {version}, expected 1")
    try:
        dtype = DType.dtype_from_code(dtype_code)
    except (KeyError, ValueError):
        raise DatasetFileError(f"{idx_path}: unknown token dtype code {dtype_code}") from None
    expected_idx = _HEADER_BYTES + num_sequences * (4 + 8) + num_documents_plus_one * 8
    if idx_size < expected_idx:
        raise DatasetFileError(
            f"{idx_path}: truncated index ({idx_size} bytes, its header describes {expected_idx})")

    index = np.memmap(idx_path, mode="r", dtype=np.uint8)
    lengths = np.frombuffer(index, dtype=np.int32, count=num_sequences, offset=_HEADER_BYTES)
    pointers = np.frombuffer(index, dtype=np.int64, count=num_sequences,
                             offset=_HEADER_BYTES + lengths.nbytes)
    documents = np.frombuffer(index, dtype=np.int64, count=num_documents_plus_one,
                              offset=_HEADER_BYTES + lengths.nbytes + pointers.nbytes)
    if num_documents_plus_one == 0 or documents[0] != 0 or documents[-1] != num_sequences \
            or np.any(np.diff(documents) < 0):
        raise DatasetFileError(f"{idx_path}: document boundaries do not cover the {num_sequences} sequences")
    itemsize = np.dtype(dtype).itemsize
    num_tokens = int(lengths.sum(dtype=np.int64))
    if num_sequences and (pointers[0] != 0 or np.any(np.diff(pointers) != lengths[:-1].astype(np.int64) * itemsize)):
        raise DatasetFileError(f"{idx_path}: sequence pointers disagree with sequence lengths")
    bin_size = os.path.getsize(bin_path)
    if bin_size != num_tokens * itemsize:
        state = "truncated" if bin_size < num_tokens * itemsize else "longer than its index"
        raise DatasetFileError(
            f"{bin_path}: {state} ({bin_size} bytes; {idx_path} describes {num_tokens} tokens of "
            f"{np.dtype(dtype).name} = {num_tokens * itemsize} bytes)")
    return IndexedDatasetSummary(prefix=prefix, num_documents=int(num_documents_plus_one - 1),
                                 num_sequences=int(num_sequences), num_tokens=num_tokens,
                                 dtype=np.dtype(dtype).name)
