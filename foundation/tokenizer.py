"""Tokenizers for the data tools and training: Qwen (v1) by default, any Hugging Face ``tokenizer.json`` on request.

The Qwen tokenizer is tiktoken BPE over ``qwen.tiktoken`` with Qwen's special tokens. The
vocabulary file is found offline: ``--tokenizer-file`` when given, else the copy the ``dashscope``
wheel ships at ``dashscope/resources/qwen.tiktoken``. Nothing is downloaded. Both backends offer
the same small surface (``encode``, ``encode_batch``, ``decode``, ``eod``, ``vocab_size``).
"""

from __future__ import annotations

import binascii
import functools
import importlib.util
from pathlib import Path

import numpy as np
import tiktoken

PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"""
    r"""\s*[\r\n]+|\s+(?!\S)|\s+"""
)
ENDOFTEXT = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
NUM_EXTRA_TOKENS = 205
NUM_BPE_TOKENS = 151_643
# Special tokens follow the BPE ranks, <|endoftext|> first.
EOD_ID = NUM_BPE_TOKENS
# Qwen pads its embedding table to 151,936 rows (a multiple of 128).
PADDED_VOCAB_SIZE = 151_936


def default_vocab_file() -> Path:
    spec = importlib.util.find_spec("dashscope")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "qwen.tiktoken not found: install the 'dashscope' package (it ships the vocabulary) "
            "or pass --tokenizer-file PATH")
    path = Path(next(iter(spec.submodule_search_locations))) / "resources" / "qwen.tiktoken"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: qwen.tiktoken missing from the dashscope package")
    return path


def load_bpe_ranks(path: Path) -> dict[bytes, int]:
    ranks: dict[bytes, int] = {}
    with open(path, "rb") as handle:
        for line_number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                token, rank = line.split()
                ranks[binascii.a2b_base64(token)] = int(rank)
            except ValueError as error:  # binascii.Error is a ValueError
                raise ValueError(f"{path}:{line_number}: not a 'base64-token rank' line ({error})") from None
    return ranks


class QwenTokenizer:
    """Encode/decode with Qwen ids; ``eod`` (<|endoftext|>) separates documents and pads."""

    def __init__(self, vocab_file: str | Path | None = None):
        path = Path(vocab_file) if vocab_file else default_vocab_file()
        ranks = load_bpe_ranks(path)
        specials = [ENDOFTEXT, IM_START, IM_END] + [f"<|extra_{i}|>" for i in range(NUM_EXTRA_TOKENS)]
        self.special_tokens = {token: len(ranks) + index for index, token in enumerate(specials)}
        self.encoding = tiktoken.Encoding(
            name="qwen", pat_str=PATTERN, mergeable_ranks=ranks, special_tokens=self.special_tokens)
        self.vocab_file = path
        self.eod = self.special_tokens[ENDOFTEXT]

    @property
    def vocab_size(self) -> int:
        return self.encoding.n_vocab

    def encode(self, text: str) -> list[int]:
        """Plain text to ids; special-token strings inside the text are treated as text."""
        return self.encoding.encode_ordinary(text)

    def encode_batch(self, texts: list[str], num_threads: int = 1) -> list[list[int]]:
        if num_threads <= 1:  # tiktoken's batch call would still hand every text to a thread pool
            return [self.encoding.encode_ordinary(text) for text in texts]
        return self.encoding.encode_ordinary_batch(texts, num_threads=num_threads)

    def encode_arrays(self, texts: list[str]) -> list[np.ndarray]:
        """Like ``encode`` per text, as uint32 arrays straight from tiktoken's buffer (no Python ints).

        An empty allowed set means no special token is recognized: the same ids as ``encode``."""
        return [self.encoding.encode_to_numpy(text, allowed_special=set(), disallowed_special=())
                for text in texts]

    def decode(self, ids) -> str:
        return self.encoding.decode(list(ids), errors="replace")


class HuggingFaceTokenizer:
    """A ``tokenizers`` JSON file (``tokenizer.json``); ``eod_token`` must be in its vocabulary."""

    def __init__(self, tokenizer_json: str | Path, eod_token: str = ENDOFTEXT):
        from tokenizers import Tokenizer  # optional backend: imported only when asked for

        path = Path(tokenizer_json)
        try:
            self.tokenizer = Tokenizer.from_file(str(path))
        except Exception as error:  # tokenizers raises a bare Exception on a bad file
            raise ValueError(f"{path}: not a Hugging Face tokenizer.json ({error})") from None
        # As with the Qwen backend, special-token strings inside a document are plain text.
        self.tokenizer.encode_special_tokens = True
        eod = self.tokenizer.token_to_id(eod_token)
        if eod is None:
            raise ValueError(f"{path}: end-of-document token {eod_token!r} is not in the vocabulary")
        self.vocab_file = path
        self.eod = eod

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: list[str], num_threads: int = 1) -> list[list[int]]:
        # tokenizers sizes its own thread pool (RAYON_NUM_THREADS); num_threads is for tiktoken.
        return [encoding.ids for encoding in self.tokenizer.encode_batch_fast(texts, add_special_tokens=False)]

    def encode_arrays(self, texts: list[str]) -> list[np.ndarray]:
        return [np.array(ids, dtype=np.uint32) for ids in self.encode_batch(texts)]

    def decode(self, ids) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=False)


Tokenizer = QwenTokenizer | HuggingFaceTokenizer


@functools.lru_cache(maxsize=4)
def get_tokenizer(vocab_file: str | None = None) -> QwenTokenizer:
    return QwenTokenizer(vocab_file)


@functools.lru_cache(maxsize=4)
def load_tokenizer(tokenizer_file: str | None = None, tokenizer_json: str | None = None,
                   eod_token: str = ENDOFTEXT) -> Tokenizer:
    """The Qwen tokenizer (optionally from ``tokenizer_file``), or a Hugging Face ``tokenizer_json``."""
    if tokenizer_json and tokenizer_file:
        raise ValueError("give either a qwen.tiktoken file or a tokenizer.json, not both")
    if tokenizer_json:
        return HuggingFaceTokenizer(tokenizer_json, eod_token)
    return get_tokenizer(tokenizer_file)
