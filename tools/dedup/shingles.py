"""Shingles as numpy hash arrays, and MinHash signatures computed by datasketch from them.

Words are hashed with vectorized numpy arithmetic over the UTF-8 bytes, and word n-grams are
combined from the word hashes, never built as strings. CJK text has no spaces between words,
so it is shingled by character n-grams over the code points (fully vectorized). A document with
fewer tokens than the n-gram size becomes one shingle of all its tokens, so short documents
collide only with identical ones; a document with no tokens has no signature and is not indexed.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np
from datasketch import LeanMinHash, MinHash

HASH_SCHEME = ("words (split at ASCII whitespace/punctuation, lower-cased): polynomial byte hash base "
               "0x100000001B3 mod 2^64 + splitmix64; n-gram = splitmix64(sum(word_hash[i+k] * ODD_k)); "
               "CJK: code points mixed with splitmix64 then the same n-gram sum; top 32 bits fed to "
               "datasketch MinHash scheme affine32")
WORD_HASH_BLOCK = 1 << 20  # bytes hashed at a time
SIGNATURE_CHUNK = 1 << 16  # shingles per update_batch call: bounds memory on 50 MB documents

# Bytes that separate words: ASCII whitespace and punctuation (UTF-8 continuation bytes never match).
_SEPARATOR = np.zeros(256, dtype=bool)
_SEPARATOR[np.frombuffer((string.whitespace + string.punctuation).encode(), dtype=np.uint8)] = True
_BYTE_BASE = np.uint64(0x100000001B3)  # odd, so it has an inverse modulo 2^64
_BYTE_BASE_INVERSE = np.uint64(pow(int(_BYTE_BASE), -1, 1 << 64))
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]")
_CJK_SAMPLE_CHARS = 4000
# Odd multipliers (from splitmix64 / murmur constants) that weight the positions of an n-gram.
_POSITION_MULTIPLIERS = np.array([0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB,
                                  0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53, 0x2545F4914F6CDD1D,
                                  0xD6E8FEB86659FD93, 0xA0761D6478BD642F, 0xE7037ED1A0B428DB,
                                  0x8EBC6AF09C88C6E3], dtype=np.uint64)


def is_cjk(text: str) -> bool:
    """True when CJK characters make up over 30% of the non-space characters (sampled)."""
    sample = text[:_CJK_SAMPLE_CHARS]
    if sample.isascii():
        return False
    letters = len(sample) - sample.count(" ") - sample.count("\n")
    return letters > 0 and len(_CJK.findall(sample)) / letters > 0.3


def splitmix64(values: np.ndarray) -> np.ndarray:
    z = values + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _ngrams(token_hashes: np.ndarray, n: int) -> np.ndarray:
    count = len(token_hashes)
    if count == 0:
        return token_hashes
    n = min(n, count)  # fewer tokens than n: one shingle of all of them
    span = count - n + 1
    combined = np.zeros(span, dtype=np.uint64)
    for k in range(n):
        combined += token_hashes[k:k + span] * _POSITION_MULTIPLIERS[k % len(_POSITION_MULTIPLIERS)]
    return splitmix64(combined)


@lru_cache(maxsize=16)
def _powers_table(base: int, size: int) -> np.ndarray:
    powers = np.full(size, base, dtype=np.uint64)
    powers[0] = 1
    return np.cumprod(powers, dtype=np.uint64)  # wraps modulo 2^64, as intended


def _powers(base: np.uint64, count: int) -> np.ndarray:
    # Tables sized to the next power of two are reused across documents.
    return _powers_table(int(base), 1 << max(count - 1, 1).bit_length())[:count]


def _block_word_hashes(data: np.ndarray) -> np.ndarray:
    is_word = np.concatenate(([False], ~_SEPARATOR[data], [False]))
    edges = np.flatnonzero(is_word[1:] != is_word[:-1])
    starts, ends = edges[0::2], edges[1::2]
    prefix = np.zeros(len(data) + 1, dtype=np.uint64)
    np.cumsum((data.astype(np.uint64) + np.uint64(1)) * _powers(_BYTE_BASE, len(data)), out=prefix[1:])
    # Multiplying by the inverse power of the start makes a word's hash independent of its position.
    hashes = (prefix[ends] - prefix[starts]) * _powers(_BYTE_BASE_INVERSE, len(data))[starts]
    return splitmix64(hashes)


def word_hashes(text: str) -> np.ndarray:
    """A 64-bit hash per word of the lower-cased text, all in numpy: a polynomial hash of each
    word's bytes from prefix sums (modulo 2^64), then splitmix64. Long texts are cut at word
    boundaries into blocks, so memory stays small for a 50 MB document."""
    data = np.frombuffer(text.lower().encode("utf-8"), dtype=np.uint8)
    blocks, start = [], 0
    while start < len(data):
        end = min(start + WORD_HASH_BLOCK, len(data))
        if end < len(data):
            separators = np.flatnonzero(_SEPARATOR[data[start:end]])
            end = start + int(separators[-1]) + 1 if len(separators) else end
        blocks.append(_block_word_hashes(data[start:end]))
        start = end
    return np.concatenate(blocks) if blocks else np.zeros(0, dtype=np.uint64)


def shingle_hashes(text: str, word_ngram: int, char_ngram: int) -> np.ndarray:
    """32-bit shingle hashes of ``text`` (uint32; empty when the text has no tokens)."""
    if is_cjk(text):
        chars = "".join(text.lower().split())
        tokens = splitmix64(np.frombuffer(chars.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64))
        hashes = _ngrams(tokens, char_ngram)
    else:
        hashes = _ngrams(word_hashes(text), word_ngram)
    return (hashes >> np.uint64(32)).astype(np.uint32)


def _whole_batch(batch: np.ndarray) -> np.ndarray:
    # datasketch's update_batch applies hashfunc to each item; given a one-item list holding the
    # whole array, this identity lets it permute and min-reduce all shingles in one numpy step.
    return batch


@dataclass(frozen=True)
class Signer:
    """MinHash signatures with datasketch (scheme affine32, ``num_perm`` permutations, ``seed``)."""

    num_perm: int = 128
    seed: int = 1
    word_ngram: int = 5
    char_ngram: int = 5

    @cached_property
    def _template(self) -> MinHash:
        return MinHash(num_perm=self.num_perm, seed=self.seed, hashfunc=_whole_batch, scheme="affine32")

    def minhash(self, text: str) -> LeanMinHash | None:
        hashes = shingle_hashes(text, self.word_ngram, self.char_ngram)
        if len(hashes) == 0:
            return None
        if len(hashes) > SIGNATURE_CHUNK:
            hashes = np.unique(hashes)  # MinHash is over the set; repetitive long texts shrink a lot
        return LeanMinHash(self._sketch(hashes))  # a copy: the sketch itself is reused

    def shingle_set(self, text: str) -> np.ndarray:
        """The document's shingles as sorted unique uint32 hashes (exact Jaccard compares these)."""
        hashes = shingle_hashes(text, self.word_ngram, self.char_ngram)
        hashes.sort()
        return hashes[np.concatenate(([True], hashes[1:] != hashes[:-1]))] if len(hashes) else hashes

    def signature(self, shingles: np.ndarray) -> np.ndarray:
        """The MinHash signature (uint32, ``num_perm``) of a non-empty shingle set."""
        return self._sketch(shingles).hashvalues.astype(np.uint32, copy=False)

    @cached_property
    def _reused(self) -> MinHash:
        return self._template.copy()

    def _sketch(self, hashes: np.ndarray) -> MinHash:
        # One MinHash per process, emptied before each document: update_batch replaces
        # ``hashvalues`` (never writes into it), and a copy per document costs more than the rest.
        sketch = self._reused
        sketch.hashvalues = self._template.hashvalues
        for start in range(0, len(hashes), SIGNATURE_CHUNK):
            sketch.update_batch([hashes[start:start + SIGNATURE_CHUNK]])
        return sketch
