"""Megatron indexed datasets (.bin/.idx) written atomically through megatron-core's builder.

Every dataset is first built under a hidden temporary prefix, reopened with megatron-core's
``IndexedDataset`` and counted, then published by renaming ``.bin`` and, last, ``.idx``. A crash
therefore leaves either no dataset or a pair that ``verify_indexed_dataset`` rejects, never a
half-written pair that looks complete.
"""

from __future__ import annotations

import gc
import os
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

with warnings.catch_warnings():
    # megatron.core warns at import that Apex / Transformer Engine are absent; irrelevant to data files.
    warnings.simplefilter("ignore", UserWarning)
    from megatron.core.datasets.indexed_dataset import DType, IndexedDataset, IndexedDatasetBuilder

    from foundation.indexed_check import DatasetFileError, IndexedDatasetSummary, verify_indexed_dataset


def token_dtype(vocab_size: int) -> type[np.number]:
    """megatron-core's choice: uint16 below 65,500 ids, else int32 (Qwen's 151,851)."""
    return DType.optimal_dtype(vocab_size)


def _temporary_prefix(prefix: str) -> str:
    """A fresh temporary prefix; leftovers of a killed earlier writer of ``prefix`` are deleted."""
    path = Path(prefix)
    for stale in path.parent.glob(f".tmp-{path.name}-*"):
        stale.unlink(missing_ok=True)
    return str(path.with_name(f".tmp-{path.name}-{os.getpid()}"))


def _publish(temporary_prefix: str, prefix: str) -> None:
    os.replace(temporary_prefix + ".bin", prefix + ".bin")
    os.replace(temporary_prefix + ".idx", prefix + ".idx")


def _discard(temporary_prefix: str) -> None:
    for suffix in (".bin", ".idx"):
        Path(temporary_prefix + suffix).unlink(missing_ok=True)


def check_dataset(prefix: str, num_documents: int, num_tokens: int) -> IndexedDatasetSummary:
    """Reopen ``prefix`` with megatron-core and require the expected document and token counts."""
    summary = verify_indexed_dataset(prefix)
    dataset = IndexedDataset(prefix)
    found_documents = len(dataset.document_indices) - 1
    found_tokens = int(dataset.sequence_lengths.sum(dtype=np.int64))
    if (found_documents, found_tokens) != (num_documents, num_tokens):
        raise DatasetFileError(
            f"{prefix}.idx: holds {found_documents} documents / {found_tokens} tokens, "
            f"expected {num_documents} / {num_tokens}")
    return summary


@dataclass
class DatasetWriter:
    """One indexed dataset: each added document becomes one sequence ending with ``eod``."""

    prefix: str
    dtype: type[np.number]
    eod: int

    def __post_init__(self) -> None:
        Path(self.prefix).parent.mkdir(parents=True, exist_ok=True)
        self.temporary_prefix = _temporary_prefix(self.prefix)
        self.builder: IndexedDatasetBuilder | None = None  # opened by building_dataset
        self.num_documents = 0
        self.num_tokens = 0

    def add_documents(self, token_arrays: Sequence[np.ndarray]) -> None:
        """Append documents, each followed by ``eod``, converted in one bulk numpy operation."""
        if not token_arrays:
            return
        eod = np.array([self.eod], dtype=self.dtype)
        tokens = np.concatenate([part for ids in token_arrays for part in (ids, eod)], dtype=self.dtype,
                                casting="unsafe")  # uint32 ids below the vocabulary size fit int32
        ends = np.cumsum([len(ids) + 1 for ids in token_arrays]).tolist()
        start = 0
        for end in ends:
            self.builder.add_document(tokens[start:end], [end - start])
            start = end
        self.num_documents += len(token_arrays)
        self.num_tokens += len(tokens)

    def add_dataset(self, prefix: str) -> None:
        """Append a finished dataset (a shard) with the builder's ``add_index``."""
        summary = verify_indexed_dataset(prefix)
        self.builder.add_index(prefix)
        self.num_documents += summary.num_documents
        self.num_tokens += summary.num_tokens

    def finish(self) -> IndexedDatasetSummary:
        """Write the index, check the reopened dataset against the counts, then publish it."""
        try:
            self.builder.finalize(self.temporary_prefix + ".idx")
            check_dataset(self.temporary_prefix, self.num_documents, self.num_tokens)
        except BaseException:
            _discard(self.temporary_prefix)
            raise
        _publish(self.temporary_prefix, self.prefix)
        return verify_indexed_dataset(self.prefix)

    def abort(self) -> None:
        # By name: a stop signal may arrive after the builder created its file, before it returned.
        if self.builder is not None:
            self.builder.data_file.close()
        _discard(self.temporary_prefix)


@contextmanager
def building_dataset(prefix: str, dtype: type[np.number], eod: int) -> Iterator[DatasetWriter]:
    """A DatasetWriter to ``finish()`` or ``abort()`` in the block; on any exception (a stop signal
    included) its temporary files are deleted."""
    writer = DatasetWriter(prefix, dtype, eod)
    try:
        writer.builder = IndexedDatasetBuilder(writer.temporary_prefix + ".bin", dtype=dtype)
        yield writer
    except BaseException:
        writer.abort()
        raise


def merge_datasets(shard_prefixes: Sequence[str], prefix: str, dtype: type[np.number], eod: int) -> IndexedDatasetSummary:
    """Concatenate finished shards, in the given order, into one published dataset."""
    # add_index runs gc.collect() per shard; frozen, the objects already alive (torch, megatron, the
    # tokenizer's vocabulary) are not scanned again each time, which otherwise dominates the merge.
    gc.freeze()
    try:
        with building_dataset(prefix, dtype, eod) as writer:
            for shard_prefix in shard_prefixes:
                writer.add_dataset(shard_prefix)
            return writer.finish()
    finally:
        gc.unfreeze()
