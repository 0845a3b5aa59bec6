"""Embedding-table size: the vocabulary padded to a multiple of ``make_vocab_size_divisible_by``.

megatron-core's own rule pads to a multiple of ``divisible_by x TP``, so the table (and with it the
checkpoint's tensors) changes with the tensor-parallel size: Qwen's 151,851 tokens take 151,936
rows at TP=1 but 152,064 at TP=2. Here the rows are the same for every TP size that divides them
(151,936 = 2^7 x 1187: TP 1, 2, 4, ..., 128); only a TP size that does not is padded further, to a
multiple of ``divisible_by x TP``. Padding rows never enter the softmax either way (pretrain/model/gpt.py).
"""

from __future__ import annotations


def padded_vocab_size(model, tensor_parallel_size: int) -> int:
    rows = -(-model.vocab_size // model.make_vocab_size_divisible_by) * model.make_vocab_size_divisible_by
    if rows % tensor_parallel_size:
        multiple = model.make_vocab_size_divisible_by * tensor_parallel_size
        rows = -(-model.vocab_size // multiple) * multiple
    return rows
