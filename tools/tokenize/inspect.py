"""``qwen-data inspect PREFIX``: counts, dtype and decoded sample documents of an indexed dataset.

The pair is checked first (``foundation.indexed_check``), so a truncated ``.bin`` or a
mismatched ``.idx`` ends in one line on stderr naming the file, and exit status 1.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from foundation.indexed_writer import DatasetFileError, IndexedDataset, verify_indexed_dataset
from foundation.tokenizer import ENDOFTEXT
from tools.stage.errors import InputError
from tools.tokenize.shard import TokenizerSpec


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("prefix", help="dataset prefix: PREFIX.bin and PREFIX.idx (naming either file works too)")
    parser.add_argument("--samples", type=int, default=2, help="documents to decode (default 2)")
    parser.add_argument("--seed", type=int, default=None,
                        help="pick the sample documents at random with this seed (default: the first ones)")
    parser.add_argument("--max-chars", type=int, default=500,
                        help="print at most this many characters of each decoded document (default 500)")
    parser.add_argument("--tokenizer-file", default=None, help="qwen.tiktoken to decode with (default: dashscope's)")
    parser.add_argument("--tokenizer-json", default=None, help="decode with this Hugging Face tokenizer.json instead")
    parser.add_argument("--eod-token", default=ENDOFTEXT, help="end-of-document token of --tokenizer-json")


def sample_documents(num_documents: int, samples: int, seed: int | None) -> list[int]:
    count = min(samples, num_documents)
    if seed is None:
        return list(range(count))
    return sorted(np.random.default_rng(seed).choice(num_documents, size=count, replace=False).tolist())


def dataset_prefix(argument: str) -> str:
    """The prefix, also when the .bin or .idx file itself was named."""
    for suffix in (".bin", ".idx"):
        if argument.endswith(suffix) and not os.path.exists(argument + ".idx"):
            return argument.removesuffix(suffix)
    return argument


def run(args: argparse.Namespace) -> int:
    args.prefix = dataset_prefix(args.prefix)
    try:
        summary = verify_indexed_dataset(args.prefix)
    except DatasetFileError as error:
        print(f"qwen-data inspect: error: {error}", file=sys.stderr)
        return 1
    print(f"prefix:    {summary.prefix}")
    print(f"documents: {summary.num_documents}")
    print(f"sequences: {summary.num_sequences}")
    print(f"tokens:    {summary.num_tokens}")
    print(f"dtype:     {summary.dtype}")
    if args.samples <= 0 or summary.num_documents == 0:
        return 0
    try:
        tokenizer = TokenizerSpec(args.tokenizer_file, args.tokenizer_json, args.eod_token).check()
    except InputError as error:
        print(f"qwen-data inspect: error: {error}", file=sys.stderr)
        return 2
    dataset = IndexedDataset(args.prefix)
    for document in sample_documents(summary.num_documents, args.samples, args.seed):
        first, last = dataset.document_indices[document], dataset.document_indices[document + 1]
        ids = np.concatenate([dataset[i] for i in range(first, last)]) if last > first else np.array([], np.int64)
        text = tokenizer.decode(ids.tolist())
        shown = text if len(text) <= args.max_chars else text[:args.max_chars] + " [...]"
        print(f"\n--- document {document} ({len(ids)} tokens) ---\n{shown}")
    return 0
