"""Tokenizing one shard (one input file) into its own indexed dataset.

Texts are encoded in batches straight into numpy arrays (tiktoken's buffer, no Python int per
token), and each batch is joined into one array before the builder writes it, which keeps the
end-to-end rate at raw tokenizer speed (``qwen-bench tokenize`` measures it).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from foundation.atomic_write import atomic_jsonl_writers
from foundation.records.document import Document, Rejection, Removal
from foundation.records.reader import read_documents
from foundation.tokenizer import ENDOFTEXT, load_tokenizer
from tools.stage.errors import InputError
from tools.stage.filter import duplicate_id_removal, rejected_record, removed_record, shard_counts
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


@dataclass(frozen=True)
class TokenizeTask:
    """Per shard: documents -> ``.work/shards/<shard>.bin/.idx``; removed/ and rejected/ as in every stage."""

    tokenizer: TokenizerSpec
    config: StageConfig

    def __call__(self, shard: Shard) -> dict[str, Any]:
        from foundation.indexed_writer import building_dataset, token_dtype  # megatron-core: only in the workers

        tokenizer = self.tokenizer.load()
        out = Path(self.config.output)
        reasons: Counter[str] = Counter()
        batch: list[str] = []
        batch_bytes = text_bytes = 0
        unreadable = False
        paths = [out / name / f"{shard.name}.jsonl" for name in ("removed", "rejected")]
        dtype = token_dtype(tokenizer.vocab_size)

        def flush() -> None:
            nonlocal batch_bytes
            dataset.add_documents(tokenizer.encode_arrays(batch))
            batch.clear()
            batch_bytes = 0

        with (atomic_jsonl_writers(*paths) as (removed, rejected),
              building_dataset(shard_prefix(out, shard), dtype, tokenizer.eod) as dataset):
            for item in read_documents(shard.path, self.config.parser, shard.byte_range):
                if isinstance(item, Rejection):
                    rejected.write(rejected_record(item))
                    unreadable |= item.stops_file
                    continue
                removal = duplicate_id_removal(item) if item.duplicate_of is not None else empty_text(item)
                if removal is not None:
                    reasons[removal.reason] += 1
                    removed.write(removed_record(item, "tokenize", removal))
                    continue
                size = len(item.text.encode("utf-8"))
                batch.append(item.text)
                batch_bytes += size
                text_bytes += size
                if batch_bytes >= BATCH_BYTES:
                    flush()
            if batch:
                flush()
            if dataset.num_documents:
                summary = dataset.finish()
                kept, tokens = summary.num_documents, summary.num_tokens
            else:  # megatron-core cannot open an empty dataset; the merge leaves this shard out
                dataset.abort()
                kept = tokens = 0
        return {**shard_counts(kept, removed.count, rejected.count, reasons, unreadable),
                "tokens": tokens, "text_bytes": text_bytes}


def empty_text(doc: Document) -> Removal | None:
    """An empty document would add a lone end-of-document token."""
    return Removal("empty_text") if not doc.text else None
