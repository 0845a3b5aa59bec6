"""Embedding-table size: megatron pads the vocabulary to a multiple of divisible_by x TP."""

from __future__ import annotations


def padded_vocab_size(model, tensor_parallel_size: int) -> int:
    multiple = model.make_vocab_size_divisible_by * tensor_parallel_size
    return -(-model.vocab_size // multiple) * multiple
