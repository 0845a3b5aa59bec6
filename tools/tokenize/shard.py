"""Tokenizing one shard (one input file) into its own indexed dataset: the kept output of the
tokenize stage's write phase (``tools.stage.filter``).

Texts are encoded in batches straight into numpy arrays (tiktoken's buffer, no Python int per
token), and each batch is joined into one array before the builder writes it, which keeps the
end-to-end rate at raw tokenizer speed (``qwen-bench tokenize`` measures it).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from foundation.records.document import Document, Removal
from foundation.tokenizer import ENDOFTEXT, load_tokenizer
from tools.stage.errors import InputError
from tools.stage.runner import Shard, StageConfig

BATCH_BYTES = 1 << 20
SHARDS_DIR = ".work/shards"


@dataclass(frozen=True)
class TokenizerSpec:
    """Which tokenizer to load (in each worker): Qwen's, or a Hugging Face tokenizer.json."""

    tokenizer_file: str | None = None
    tokenizer_json: str | None = None
    eod_token: str = ENDOFTEXT

    def load(self):
        return load_tokenizer(self.tokenizer_file, self.tokenizer_json, self.eod_token)

    def check(self):
        """Load in the parent before any work: a bad tokenizer is one line naming the flag."""
        for flag, path in (("--tokenizer-file", self.tokenizer_file), ("--tokenizer-json", self.tokenizer_json)):
            if path is not None and not Path(path).is_file():
                raise InputError(f"{flag} {path}: no such file")
        try:
            return self.load()
        except (OSError, ValueError) as error:
            raise InputError(str(error)) from None


def dataset_name_problem(name: object) -> str | None:
    """Why ``name`` cannot name the dataset files (one rule for --dataset-name and the YAML)."""
    return None if isinstance(name, str) and name and "/" not in name else f"must be a plain file name, got {name!r}"


def shard_prefix(output: Path, shard: Shard) -> str:
    return str(Path(output) / SHARDS_DIR / shard.name)


class _DatasetSink:
    """Kept documents of one shard, encoded in batches into its dataset."""

    def __init__(self, tokenizer, dataset):
        self.tokenizer, self.dataset = tokenizer, dataset
        self.batch: list[str] = []
        self.batch_bytes = self.text_bytes = self.count = self.tokens = 0

    def write(self, doc: Document) -> None:
        size = len(doc.text.encode("utf-8"))
        self.batch.append(doc.text)
        self.count += 1
        self.batch_bytes += size
        self.text_bytes += size
        if self.batch_bytes >= BATCH_BYTES:
            self._flush()

    def _flush(self) -> None:
        self.dataset.add_documents(self.tokenizer.encode_arrays(self.batch))
        self.batch.clear()
        self.batch_bytes = 0

    def finish(self) -> None:
        if self.batch:
            self._flush()
        if self.dataset.num_documents:
            summary = self.dataset.finish()
            self.count, self.tokens = summary.num_documents, summary.num_tokens
        else:  # megatron-core cannot open an empty dataset; the merge leaves this shard out
            self.dataset.abort()

    def result(self) -> dict[str, Any]:
        return {"tokens": self.tokens, "text_bytes": self.text_bytes}


@dataclass(frozen=True)
class TokenizedDataset:
    """The kept output of tokenize: per shard, its own dataset ``.work/shards/<shard>.bin/.idx``."""

    tokenizer: TokenizerSpec

    @contextmanager
    def open(self, shard: Shard, config: StageConfig) -> Iterator[_DatasetSink]:
        from foundation.indexed_writer import building_dataset, token_dtype  # megatron-core: only in the workers

        tokenizer = self.tokenizer.load()
        with building_dataset(shard_prefix(config.output, shard), token_dtype(tokenizer.vocab_size),
                              tokenizer.eod) as dataset:
            sink = _DatasetSink(tokenizer, dataset)
            yield sink
            sink.finish()


def empty_text(doc: Document) -> Removal | None:
    """An empty document would add a lone end-of-document token."""
    return Removal("empty_text") if not doc.text else None
