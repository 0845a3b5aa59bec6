"""The embedded default corpus: text every Python installation ships, as megatron datasets.

Two sources, so the default run shows a weighted blend: the standard library's documentation
topics (``pydoc_data.topics``, English prose) and its Python sources (code). Each is tokenized with
the real Qwen tokenizer and written through megatron-core's ``IndexedDatasetBuilder`` with an EOD
token after every document. Files are written under temporary names and renamed (.bin, then .idx
last), so an interrupted build is never mistaken for a finished one; later runs reuse them.
"""

from __future__ import annotations

import hashlib
import os
import sys
import sysconfig
from pathlib import Path

import numpy as np
import torch
from megatron.core.datasets.indexed_dataset import IndexedDatasetBuilder
from tqdm import tqdm

from foundation.tokenizer import get_tokenizer

# Enough text for a few hundred tiny-model steps while keeping the first build to seconds.
MAX_SOURCE_FILES = 400


def _documentation_topics() -> list[str]:
    from pydoc_data.topics import topics

    return [topics[name] for name in sorted(topics)]


def _library_sources() -> list[str]:
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(path for path in root.glob("*.py"))[:MAX_SOURCE_FILES]
    return [path.read_text(encoding="utf-8", errors="replace") for path in files]


SOURCES = {"python-docs": _documentation_topics, "python-code": _library_sources}
# Prose is up-sampled relative to code, as Qwen weights its sources.
DEFAULT_WEIGHTS = {"python-docs": 0.6, "python-code": 0.4}


def _write_prefix(prefix: str, documents: list[str], label: str) -> None:
    tokenizer = get_tokenizer()
    tmp_bin, tmp_idx = f"{prefix}.bin.tmp{os.getpid()}", f"{prefix}.idx.tmp{os.getpid()}"
    builder = IndexedDatasetBuilder(tmp_bin, dtype=np.int32)
    for ids in tqdm(tokenizer.encode_batch(documents), desc=f"embedded corpus: {label}", file=sys.stderr,
                    disable=None):
        builder.add_item(torch.tensor(ids + [tokenizer.eod], dtype=torch.int32))
        builder.end_document()
    builder.finalize(tmp_idx)
    os.replace(tmp_bin, f"{prefix}.bin")
    os.replace(tmp_idx, f"{prefix}.idx")


def build_embedded_corpus(cache_dir: str) -> tuple[list[str], list[float]]:
    """Return (prefixes, weights), building the datasets on the first call."""
    key = hashlib.sha256(f"{sys.version}|{get_tokenizer().vocab_size}".encode()).hexdigest()[:12]
    directory = Path(cache_dir) / f"embedded-{key}"
    directory.mkdir(parents=True, exist_ok=True)
    prefixes, weights = [], []
    for label, load in SOURCES.items():
        prefix = str(directory / label)
        if not (os.path.exists(f"{prefix}.bin") and os.path.exists(f"{prefix}.idx")):
            _write_prefix(prefix, load(), label)
        prefixes.append(prefix)
        weights.append(DEFAULT_WEIGHTS[label])
    return prefixes, weights
