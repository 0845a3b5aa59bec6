"""The Qwen tokenizer against an independent construction written here from qwen.tiktoken's ranks:
Qwen's pre-tokenizer pattern applied with the ``regex`` package, then textbook byte-level BPE
(merge the adjacent pair whose concatenation has the lowest rank until none is in the vocabulary)."""

from __future__ import annotations

import base64
import importlib.util
from pathlib import Path

import pytest
import regex

from foundation.tokenizer import HuggingFaceTokenizer, get_tokenizer, load_tokenizer

QWEN_PATTERN = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"""
                r"""\s*[\r\n]+|\s+(?!\S)|\s+""")


@pytest.fixture(scope="module")
def reference_ranks() -> dict[bytes, int]:
    package = Path(next(iter(importlib.util.find_spec("dashscope").submodule_search_locations)))
    lines = (package / "resources" / "qwen.tiktoken").read_text().splitlines()
    return {base64.b64decode(token): int(rank) for token, rank in (line.split() for line in lines if line)}


def reference_encode(text: str, ranks: dict[bytes, int]) -> list[int]:
    ids = []
    for piece in regex.findall(QWEN_PATTERN, text):
        parts = [bytes([byte]) for byte in piece.encode("utf-8")]
        while len(parts) > 1:
            pair_ranks = [ranks.get(parts[i] + parts[i + 1]) for i in range(len(parts) - 1)]
            candidates = [(rank, i) for i, rank in enumerate(pair_ranks) if rank is not None]
            if not candidates:
                break
            _, i = min(candidates)
            parts[i:i + 2] = [parts[i] + parts[i + 1]]
        ids.extend(ranks[part] for part in parts)
    return ids


EDGE_CASES = [
    "Hello world",
    "1234567890 and 3.14159, 2024-11-20",
    "通义千问是阿里云研发的大规模语言模型。你好，世界！",
    "def fib(n: int) -> int:\n\tif n < 2:\n\t\treturn n\n    return fib(n - 1) + fib(n-2)  # slow\n\n\n",
    "I ❤️ llamas 🦙🦙, family 👨‍👩‍👧 and flags 🇨🇳🇺🇸",
    "   leading spaces", "trailing spaces   ", "a  \n  b", "x \n\n \n y", "\r\n\r\n", "\t\t", " ", "",
    "DON'T we'll I'M they've it's",
    "café naïve Ünïcödé — Ελληνικά, русский, 한국어, العربية",
    "<|endoftext|> is text here, not a special token",
]


def test_hello_world_is_qwen_ids():
    assert get_tokenizer().encode("Hello world") == [9707, 1879]


def test_digits_are_split_one_by_one():
    tokenizer = get_tokenizer()
    ids = tokenizer.encode("1234567890")
    assert len(ids) == 10
    assert [tokenizer.decode([i]) for i in ids] == list("1234567890")


@pytest.mark.parametrize("text", EDGE_CASES)
def test_ids_equal_independent_bpe(text, reference_ranks):
    tokenizer = get_tokenizer()
    assert tokenizer.encode(text) == reference_encode(text, reference_ranks)
    assert tokenizer.decode(tokenizer.encode(text)) == text


def test_batch_encoding_equals_single_encoding():
    tokenizer = get_tokenizer()
    assert tokenizer.encode_batch(EDGE_CASES, num_threads=2) == [tokenizer.encode(t) for t in EDGE_CASES]
    assert [a.tolist() for a in tokenizer.encode_arrays(EDGE_CASES)] == [tokenizer.encode(t) for t in EDGE_CASES]


def test_special_tokens_follow_the_bpe_vocabulary():
    tokenizer = get_tokenizer()
    assert tokenizer.eod == 151643
    assert tokenizer.special_tokens["<|im_start|>"] == 151644
    assert tokenizer.special_tokens["<|im_end|>"] == 151645
    assert tokenizer.special_tokens["<|extra_204|>"] == 151850
    assert tokenizer.vocab_size == 151851
    assert 151643 not in tokenizer.encode("<|endoftext|>")


def test_tokenizer_file_with_a_bad_line_names_the_file_and_line(tmp_path):
    vocab = tmp_path / "broken.tiktoken"
    vocab.write_text("SGVsbG8= 0\nnot-a-rank-line\n")
    with pytest.raises(ValueError, match=r"broken\.tiktoken:2"):
        load_tokenizer(tokenizer_file=str(vocab))


def write_small_hf_tokenizer(path: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(["the quick brown fox jumps over the lazy dog"] * 20, trainer)
    tokenizer.save(str(path))


def test_hugging_face_tokenizer_json_backend_round_trips(tmp_path):
    path = tmp_path / "tokenizer.json"
    write_small_hf_tokenizer(path)
    tokenizer = load_tokenizer(tokenizer_json=str(path))
    assert isinstance(tokenizer, HuggingFaceTokenizer)
    assert tokenizer.eod == 0
    ids = tokenizer.encode("the lazy fox, 42 émigrés")
    assert tokenizer.decode(ids) == "the lazy fox, 42 émigrés"
    assert tokenizer.encode_batch(["the dog", "a fox"]) == [tokenizer.encode("the dog"), tokenizer.encode("a fox")]


@pytest.mark.slow
def test_qwen_vocabulary_converted_by_transformers_gives_the_same_ids(tmp_path):
    """A second independent construction: transformers' TikTokenConverter builds a Hugging Face
    tokenizer.json from the same ranks; through ``--tokenizer-json`` it must give the same ids."""
    from tokenizers import AddedToken
    from transformers.convert_slow_tokenizer import TikTokenConverter

    package = Path(next(iter(importlib.util.find_spec("dashscope").submodule_search_locations)))
    converted = TikTokenConverter(vocab_file=str(package / "resources" / "qwen.tiktoken"),
                                  pattern=QWEN_PATTERN).converted()
    converted.add_special_tokens([AddedToken("<|endoftext|>", special=True)])  # id 151643, after the ranks
    converted.save(str(tmp_path / "qwen.json"))
    tokenizer = load_tokenizer(tokenizer_json=str(tmp_path / "qwen.json"))
    assert tokenizer.eod == get_tokenizer().eod == 151643
    assert tokenizer.encode_batch(EDGE_CASES) == [get_tokenizer().encode(text) for text in EDGE_CASES]


def test_hugging_face_tokenizer_without_the_eod_token_is_refused(tmp_path):
    path = tmp_path / "tokenizer.json"
    write_small_hf_tokenizer(path)
    with pytest.raises(ValueError, match=r"tokenizer\.json: end-of-document token '<\|im_end\|>'"):
        load_tokenizer(tokenizer_json=str(path), eod_token="<|im_end|>")
