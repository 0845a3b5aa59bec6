"""Test corpora and a tiny language model for the scoring tests.

The language model is trained here, by ``qwen-train``, on sentences of a small grammar over a
word-level vocabulary (a Hugging Face tokenizer.json of 40-odd words), so that a qwen-tiny run of a
few dozen steps learns word order: a held-out sentence is likely under it, the same words shuffled
are not.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[3]
ENDOFTEXT = "<|endoftext|>"
WORD_CLASSES = {
    "det": ["the", "a", "every", "one"],
    "adj": ["small", "red", "quiet", "old", "bright", "cold", "green", "tall"],
    "noun": ["cat", "river", "teacher", "machine", "garden", "letter", "bird", "city"],
    "verb": ["sees", "finds", "carries", "follows", "paints", "opens", "hears", "builds"],
    "adv": ["slowly", "today", "again", "quickly"],
}
PATTERN = ["det", "adj", "noun", "verb", "det", "adj", "noun", "adv", "."]


def vocabulary() -> list[str]:
    return [ENDOFTEXT, "[UNK]", "."] + [word for words in WORD_CLASSES.values() for word in words]


def write_word_tokenizer(path: Path) -> Path:
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import WhitespaceSplit

    tokenizer = Tokenizer(WordLevel({word: i for i, word in enumerate(vocabulary())}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = WhitespaceSplit()
    tokenizer.save(str(path))
    return path


def grammar_document(rng: random.Random, sentences: int) -> str:
    return " ".join(" ".join(rng.choice(WORD_CLASSES[part]) if part in WORD_CLASSES else part for part in PATTERN)
                    for _ in range(sentences))


def shuffled_words(text: str, rng: random.Random) -> str:
    words = text.split()
    rng.shuffle(words)
    return " ".join(words)


def write_indexed_dataset(prefix: str, documents: list[str], tokenizer_json: Path) -> None:
    import torch
    from megatron.core.datasets.indexed_dataset import IndexedDatasetBuilder
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tokenizer_json))
    builder = IndexedDatasetBuilder(f"{prefix}.bin", dtype=np.int32)
    for text in documents:
        builder.add_item(torch.tensor(tokenizer.encode(text).ids + [0], dtype=torch.int32))
        builder.end_document()
    builder.finalize(f"{prefix}.idx")


def train_grammar_model(directory: Path, steps: int = 60) -> tuple[Path, Path]:
    """(checkpoint directory, tokenizer.json) of a qwen-tiny run on grammar sentences."""
    tokenizer_json = write_word_tokenizer(directory / "tokenizer.json")
    rng = random.Random(0)
    prefix = str(directory / "grammar")
    write_indexed_dataset(prefix, [grammar_document(rng, rng.randint(2, 6)) for _ in range(600)], tokenizer_json)
    run_dir = directory / "run"
    overrides = [
        "model.preset=qwen-tiny", f"model.vocab_size={len(vocabulary())}", "model.seq_length=32",
        "training.micro_batch_size=8", "training.global_batch_size=8", "training.precision=fp32",
        "training.log_interval=10", "training.eval_interval=1000", "training.eval_iters=1",
        "optimizer.warmup_steps=5", "optimizer.lr=1e-2", f"optimizer.decay_steps={steps}",
        "logging.tensorboard=false", f"data.prefixes=[{prefix}]", f"training.train_steps={steps}",
        f"logging.dir={run_dir}", f"data.cache_dir={run_dir / 'data_cache'}",
        f"checkpoint.dir={run_dir / 'ckpt'}", f"checkpoint.save_interval={steps}",
    ]
    env = {key: value for key, value in os.environ.items()
           if key not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    done = subprocess.run([sys.executable, "-m", "pretrain.cli.train", *overrides], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return run_dir / "ckpt", tokenizer_json


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records), encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line]


def stage_records(output: Path, kind: str) -> list[dict]:
    return [record for path in sorted((output / kind).glob("*.jsonl")) for record in read_jsonl(path)]


def qwen_data(*argv: str, env: dict | None = None) -> subprocess.CompletedProcess:
    clean_env = {key: value for key, value in (env or os.environ).items()
                 if key not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    return subprocess.run([sys.executable, "-c", "from tools.cli import main; main()", *argv], cwd=REPO,
                          env=clean_env, capture_output=True, text=True, timeout=900)
