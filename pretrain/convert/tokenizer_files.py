"""Qwen's tokenizer as Hugging Face files, so that ``AutoTokenizer`` loads an exported model offline.

Qwen (v1) ships its vocabulary as ``qwen.tiktoken`` (BPE ranks) and a tokenizer class that needs
``trust_remote_code``. Here the same tokenizer is written as a ``tokenizer.json`` for the
``tokenizers`` library: transformers' ``TikTokenConverter`` turns the ranks into byte-level BPE
merges, with Qwen's pre-tokenizer pattern (digits split one by one), and the 208 special tokens
follow the ranks in Qwen's order (``<|endoftext|>`` = 151643, ``<|im_start|>``, ``<|im_end|>``,
``<|extra_0..204|>``). Ids equal ``qwen-data tokenize``'s (tests/pretrain/test_hf_export.py).
No BOS token is added and ``<|endoftext|>`` is the end-of-sequence and padding token, as in training.
"""

from __future__ import annotations

from pathlib import Path

from foundation.tokenizer import ENDOFTEXT, PATTERN, QwenTokenizer
from pretrain.convert import ConversionError
from pretrain.convert.hf import write_json

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
QWEN_VOCAB_SIZE = 151_851  # 151,643 BPE ranks + 208 special tokens


def write_qwen_tokenizer(directory: Path, model_max_length: int, vocab_file: Path | None = None) -> None:
    """Writes TOKENIZER_FILES into ``directory`` (``vocab_file`` defaults to dashscope's qwen.tiktoken)."""
    from tokenizers import AddedToken
    from transformers.convert_slow_tokenizer import TikTokenConverter

    try:
        qwen = QwenTokenizer(vocab_file)
    except (FileNotFoundError, ValueError) as error:
        raise ConversionError(f"cannot write the tokenizer: {error}") from None
    tokenizer = TikTokenConverter(vocab_file=str(qwen.vocab_file), pattern=PATTERN).converted()
    specials = sorted(qwen.special_tokens, key=qwen.special_tokens.get)
    tokenizer.add_special_tokens([AddedToken(token, normalized=False, special=True) for token in specials])
    misplaced = [token for token in specials if tokenizer.token_to_id(token) != qwen.special_tokens[token]]
    if misplaced:  # the ranks file has holes or extra lines: ids would silently differ from training's
        raise ConversionError(f"{qwen.vocab_file}: special token {misplaced[0]} would get id "
                              f"{tokenizer.token_to_id(misplaced[0])}, not {qwen.special_tokens[misplaced[0]]}")
    tokenizer.save(str(directory / "tokenizer.json"))
    write_json(directory / "tokenizer_config.json", {
        "tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": model_max_length,
        "bos_token": None, "eos_token": ENDOFTEXT, "pad_token": ENDOFTEXT, "unk_token": None,
        "add_bos_token": False, "add_eos_token": False, "clean_up_tokenization_spaces": False,
        "additional_special_tokens": specials[1:]})
    write_json(directory / "special_tokens_map.json", {"eos_token": ENDOFTEXT, "pad_token": ENDOFTEXT,
                                                       "additional_special_tokens": specials[1:]})
