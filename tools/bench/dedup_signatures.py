"""Signature throughput per core: the same documents through every method, the methods taking
turns on blocks of ``BLOCK`` documents so that other load on the machine hits them alike (turns
per document would put datatrove's large spaCy working set between every two of our small numpy
calls); CPU seconds of this process.

- datasketch plain: one ``MinHash`` per document, default hash (SHA-1), ``update`` per word 5-gram
  string;
- datasketch ``update_batch``: the same, one ``update_batch`` per document;
- ours: what ``qwen-data dedup`` does per document at index time: the shingle set (numpy word
  hashes, 5-grams combined arithmetically, ``np.unique``) and its datasketch signature;
- datatrove: ``MinhashDedupSignature.get_shingles`` + ``get_signature`` (its default English spaCy
  word tokenizer, xxhash 64-bit, 14 x 8 = 112 hashes) when datatrove is installed (the ``bench``
  extra).
"""

from __future__ import annotations

import tempfile
import time
from typing import Callable

from datasketch import MinHash

from tools.dedup.shingles import Signer

BLOCK = 20
PLAIN = "datasketch plain: `update` per shingle (SHA-1)"
DATATROVE = "datatrove MinhashDedupSignature: get_shingles + get_signature (spaCy words, xxhash, 14 x 8)"


def _word_5grams(text: str) -> list[bytes]:
    words = text.lower().split()
    return [" ".join(words[i:i + 5]).encode("utf-8") for i in range(max(len(words) - 4, 1))]


def _plain(text: str, num_perm: int) -> None:
    sketch = MinHash(num_perm=num_perm)
    for shingle in _word_5grams(text):
        sketch.update(shingle)


def _plain_batch(text: str, num_perm: int) -> None:
    MinHash(num_perm=num_perm).update_batch(_word_5grams(text))


def datatrove_signer(directory: str) -> Callable[[str], object] | None:
    try:
        from datatrove.pipeline.dedup.minhash import MinhashConfig, MinhashDedupSignature
    except ImportError:
        return None
    stage = MinhashDedupSignature(directory, MinhashConfig())
    return lambda text: stage.get_signature(stage.get_shingles(text))


def signature_methods(num_perm: int, scratch: str) -> dict[str, Callable[[str], object]]:
    signer = Signer(num_perm=num_perm)
    methods = {
        PLAIN: lambda t: _plain(t, num_perm),
        "datasketch `update_batch` per document (SHA-1)": lambda t: _plain_batch(t, num_perm),
        "qwen-data dedup: numpy shingle set -> datasketch signature": lambda t: signer.signature(signer.shingle_set(t)),
    }
    datatrove = datatrove_signer(scratch)
    if datatrove is not None:
        methods[DATATROVE] = datatrove
    return methods


def cpu_rates(methods: dict[str, Callable[[str], object]], texts: list[str],
              block: int = BLOCK) -> dict[str, tuple[float, float]]:
    """(docs/s, MB/s) per CPU second of each method over ``texts``, the methods taking turns on
    blocks of documents."""
    seconds = dict.fromkeys(methods, 0.0)
    for start in range(0, len(texts), block):
        for name, method in methods.items():
            started = time.process_time()
            for text in texts[start:start + block]:
                method(text)
            seconds[name] += time.process_time() - started
    megabytes = sum(len(t.encode()) for t in texts) / 1e6
    return {name: (len(texts) / s, megabytes / s) for name, s in seconds.items()}


def signature_table(texts: list[str], num_perm: int) -> str:
    with tempfile.TemporaryDirectory(prefix="qwen-bench-signatures-") as scratch:
        rates = cpu_rates(signature_methods(num_perm, scratch), texts)
    baseline = rates[PLAIN][0]
    ours = rates["qwen-data dedup: numpy shingle set -> datasketch signature"][0]
    lines = ["| signatures, one core (shingling included) | docs/s per core | MB/s per core | vs plain | "
             "ours vs it |", "|---|---|---|---|---|"]
    for name, (docs, megabytes) in rates.items():
        lines.append(f"| {name} | {docs:,.0f} | {megabytes:.2f} | {docs / baseline:.1f}x | {ours / docs:.1f}x |")
    if DATATROVE not in rates:
        lines.append("| datatrove | not installed (pip install -e '.[bench]') | | | |")
    return "\n".join(lines)
